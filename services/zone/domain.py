"""The customer zone's decisions, pure: rights, who may change whom, what a login name is,
when failed logins lock, which language a page speaks, the state an invoice shows, and
the tokens that bind a form to its session. No I/O, no clock: "now" is an argument."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

# What a membership may do, in the order pages list them. The owner has every right.
RIGHTS: tuple[str, ...] = (
    "invoices",  # see invoices and pay them
    "payments",  # see payments
    "services",  # see services and usage
    "calls",  # see call records
    "topup",  # top up VoIP credit
    "contacts",  # edit contact details
    "users",  # manage users and contacts
    "support",  # send support requests
)
LANGUAGES: tuple[str, ...] = ("cs", "sk", "hu", "en")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
_CONTRACT = re.compile(r"^[1-9][0-9]{0,9}$")


class RightsError(ValueError):
    pass


def parse_rights(values: Iterable[str]) -> tuple[str, ...]:
    """The rights named, in ``RIGHTS`` order; an unknown name is refused, naming it."""
    given = {v.strip() for v in values if v.strip()}
    unknown = sorted(given - set(RIGHTS))
    if unknown:
        raise RightsError(f"unknown right {unknown[0]!r}: expected one of {', '.join(RIGHTS)}")
    return tuple(r for r in RIGHTS if r in given)


@dataclass(frozen=True)
class Membership:
    person_id: int
    contract: str
    owner: bool
    rights: tuple[str, ...]

    def may(self, right: str) -> bool:
        if right not in RIGHTS:
            raise RightsError(f"unknown right {right!r}")
        return self.owner or right in self.rights


def may_change(actor: Membership, target: Membership) -> bool:
    """Whether ``actor`` may change ``target``'s rights or remove it: with the right to
    manage users, of the same customer, never the owner (an operator's matter) and never
    themselves (nobody locks themselves out by a click)."""
    return (
        actor.may("users")
        and actor.contract == target.contract
        and not target.owner
        and actor.person_id != target.person_id
    )


LoginName = tuple[Literal["contract", "email"], str]


def login_name(text: str) -> LoginName | None:
    """What a person typed to log in: a customer number (the contract's, as the ISPs we
    replace have it) or an e-mail address (compared in lower case); None for neither."""
    value = text.strip()
    if _CONTRACT.match(value):
        return "contract", value
    if "@" in value and len(value) <= 320 and not any(c.isspace() for c in value):
        return "email", value.lower()
    return None


def password_problem(password: str, email: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return "too_short"
    if len(password) > MAX_PASSWORD:
        return "too_long"
    if password.strip().lower() == email.strip().lower():
        return "is_email"
    return None


@dataclass(frozen=True)
class Throttle:
    window: timedelta
    per_account: int
    per_address: int


def locked_until(
    failures: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> datetime | None:
    """Until when a key (an account or an address) is locked, given its failed logins:
    while ``limit`` or more of them fall within ``window`` before ``now``; it opens when
    enough of them have aged out of the window. None: not locked."""
    recent = sorted(t for t in failures if now - window < t <= now)
    if len(recent) < limit:
        return None
    # Locked until all but limit - 1 of the recent ones have left the window.
    return recent[len(recent) - limit] + window


def pick_language(chosen: str | None, accept: str | None, default: str = "cs") -> str:
    """The page's language: the person's choice if it is one we speak, else the first of
    the browser's Accept-Language we speak, else ``default``."""
    if chosen in LANGUAGES:
        return chosen
    for part in (accept or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return default if default in LANGUAGES else "en"


InvoiceState = Literal["open", "partially_paid", "paid", "cancelled", "overdue"]


@dataclass(frozen=True)
class InvoiceView:
    state: InvoiceState
    paid_minor: int
    open_minor: int


def invoice_view(
    amount_minor: int,
    cancelled: bool,
    settlement: str | None,
    paid_minor: int | None,
    open_minor: int | None,
    overdue: bool,
) -> InvoiceView:
    """What an invoice shows: cancelled; else what payments last said (paid, partially
    paid, open again); an open one past its due date is overdue."""
    if cancelled:
        return InvoiceView("cancelled", paid_minor or 0, 0)
    if settlement == "paid":
        return InvoiceView("paid", paid_minor or 0, 0)
    paid = paid_minor or 0
    left = open_minor if open_minor is not None else amount_minor - paid
    if overdue:
        return InvoiceView("overdue", paid, left)
    return InvoiceView("partially_paid" if paid > 0 else "open", paid, left)


def digest(token: str) -> bytes:
    """How a link token or session id is stored: its SHA-256, never the value."""
    return hashlib.sha256(token.encode()).digest()


def form_token(key: bytes, session: str) -> str:
    """The CSRF token of every form shown to the browser holding cookie ``session``."""
    return hmac.new(key, b"zone-form\x00" + session.encode(), hashlib.sha256).hexdigest()


def form_token_fits(key: bytes, session: str, presented: str) -> bool:
    return bool(session) and hmac.compare_digest(form_token(key, session), presented)


def cross_site(origin: str | None, fetch_site: str | None, hosts: frozenset[str]) -> bool:
    """A form post from another site's page: its ``Origin`` is not one of ``hosts``
    (scheme://host[:port], lower case), or ``Sec-Fetch-Site`` says cross-site. A client
    that sends neither is no browser following another site's form (and still needs the
    form token)."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    return origin is not None and origin.lower().rstrip("/") not in hosts


ServiceState = Literal["active", "ended", "upcoming"]


def service_state(starts_on: date | None, ends_on: date | None, today: date) -> ServiceState:
    """A service is billed from its first day to its last (``ends_on``, the day device
    insurance is "billed until"), both included."""
    if starts_on is not None and today < starts_on:
        return "upcoming"
    if ends_on is not None and today > ends_on:
        return "ended"
    return "active"


def period_price(unit_price_minor: int, quantity: Decimal) -> int:
    """A service's price for one whole period: unit price times quantity, to the minor unit
    (half up, as invoices round a line)."""
    return int((unit_price_minor * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
