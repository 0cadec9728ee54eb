"""The customer zone's decisions, pure: rights, who may change whom, what a login name is,
when failed logins lock, which language a page speaks, the state an invoice shows, and
the tokens that bind a form to its session. No I/O, no clock: "now" is an argument."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from schemas import contacts as contact_rules
from schemas import pricelist
from schemas.events import Contact

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


# --- contacts -------------------------------------------------------------------------------

# The zone's categories of a contact, and the categories notify routes by (stored in the
# contract's contacts, services/notify/domain.py). Invoices and reminders are notify's
# "billing" (invoices, credit notes) and "dunning" (reminders); service and access is
# "access" (notices, restriction, suspension, restore: notify sends those to "dunning"
# and "access" contacts); technical and support keep their names (notify sends nothing
# by them yet: outage notices and ticket replies will).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "invoices": ("billing", "dunning"),
    "access": ("access",),
    "technical": ("technical",),
    "support": ("support",),
}
MAX_NAME = 200


def shown_categories(stored: Iterable[str]) -> tuple[str, ...]:
    """The zone's categories a contact is in: each of whose notify categories it has any."""
    have = set(stored)
    return tuple(c for c, parts in CATEGORIES.items() if have.intersection(parts))


def stored_categories(stored: Sequence[str], checked: Iterable[str]) -> list[str]:
    """The notify categories after a person ticked ``checked`` on a contact that had
    ``stored``: a zone category left as it was shown keeps what it stood for (a contact
    with only "billing" does not gain "dunning" by an edit of its phone); one ticked on
    gets all its notify categories, one ticked off loses them; categories the zone does
    not show stay as they are."""
    chosen = set(checked)
    unknown = sorted(chosen - set(CATEGORIES))
    if unknown:
        raise ContactProblem("categories", "bad_category", unknown[0])
    was = set(shown_categories(stored))
    out = [c for c in stored if not any(c in CATEGORIES[z] for z in was ^ chosen)]
    for zone in CATEGORIES:
        if zone in chosen and zone not in was:
            out.extend(c for c in CATEGORIES[zone] if c not in out)
    return out


def contact_version(contact: Contact) -> str:
    """A short fingerprint of a contact as a page showed it: a form posts it back, and a
    change or removal is refused when the contact at that place is another now (the list
    shifted, or somebody changed it meanwhile) rather than applied to the wrong one."""
    return hashlib.sha256(contact.model_dump_json().encode()).hexdigest()[:16]


class ContactProblem(ValueError):
    """A contact's field refused: which field, the wording key of why (the page says it
    in the person's language) and the rule's own detail (which character, say)."""

    def __init__(self, field: str, key: str, detail: str = "") -> None:
        super().__init__(f"{field}: {key} {detail}".strip())
        self.field = field
        self.key = key
        self.detail = detail


@dataclass(frozen=True)
class ContactForm:
    """A contact as a person typed it in the zone (stripped), before the rules."""

    name: str
    email: str
    phone: str
    language: str
    categories: tuple[str, ...] = ()


Problems = dict[str, tuple[str, str]]  # field -> (wording key, detail)


def contact_from_form(
    form: ContactForm, before: Contact | None, keep_categories: bool = False
) -> tuple[Contact | None, Problems]:
    """The contact ``form`` asks for (``before``: the one it changes; its owner flag is
    kept, the zone never makes or unmakes the owner), or every problem by field: a name,
    an e-mail address or a phone (at least one of the two), a language the zone speaks.
    ``keep_categories``: the form shows none (the customer's own details), they stay."""
    problems: Problems = {}
    name = _checked(problems, "name", form.name, _name)
    email = _checked(problems, "email", form.email, contact_rules.email_address)
    phone = _checked(problems, "phone", form.phone, contact_rules.phone_number)
    language = _checked(problems, "language", form.language, _language)
    if "email" not in problems and "phone" not in problems and not (email or phone):
        problems["email"] = ("need_address", "")
    stored = list(before.categories) if before is not None else []
    try:
        categories = stored if keep_categories else stored_categories(stored, form.categories)
    except ContactProblem as exc:
        problems[exc.field] = (exc.key, exc.detail)
    if problems:
        return None, problems
    contact = Contact(
        name=name or "",
        email=email,
        phone=phone,
        language=language or "cs",
        categories=categories,
        owner=before.owner if before is not None else False,
    )
    return contact, {}


def _checked(problems: Problems, field: str, value: str, check: Callable[[str], str]) -> str | None:
    """``check(value)``, None for an empty optional value; a refusal goes to ``problems``."""
    if not value and field in ("email", "phone"):
        return None
    try:
        return check(value)
    except ContactProblem as exc:
        problems[field] = (exc.key, exc.detail)
    except ValueError as exc:  # the contact rules' ContactError, its message the detail
        problems[field] = (f"bad_{field}", str(exc))
    return None


def _name(value: str) -> str:
    contact_rules.plain_text(value)
    if not value:
        raise ContactProblem("name", "need_name")
    if len(value) > MAX_NAME:
        raise ContactProblem("name", "bad_name", f"at most {MAX_NAME} characters")
    return value


def _language(value: str) -> str:
    if value not in LANGUAGES:
        raise ContactProblem("language", "bad_language", value[:20])
    return value


# --- support requests -----------------------------------------------------------------------

MAX_SUBJECT = 200
MAX_TEXT = 10000
MAX_SERVICE = 200


@dataclass(frozen=True)
class SupportForm:
    subject: str
    text: str
    about: str  # the contract the request is about, as the form offered it ("" none)
    service: str  # which service, in the person's words ("" none)


def support_problems(form: SupportForm, contract: str) -> Problems:
    """Why a support request is refused, by field: a subject (one line) and a text (lines
    allowed, no other control character), within their lengths; ``about`` only the
    contract acted for (nobody files a request about another customer's contract)."""
    problems: Problems = {}
    for field, value, limit, lines in (
        ("subject", form.subject, MAX_SUBJECT, False),
        ("text", form.text, MAX_TEXT, True),
        ("service", form.service, MAX_SERVICE, False),
    ):
        if not value.strip() and field != "service":
            problems[field] = (f"need_{field}", "")
            continue
        try:
            # lines and tabs allowed in the text: checked as spaces (positions kept)
            seen = value.replace("\r", " ").replace("\n", " ").replace("\t", " ")
            contact_rules.plain_text(seen if lines else value)
        except ValueError as exc:
            problems[field] = (f"bad_{field}", str(exc))
            continue
        if len(value) > limit:
            problems[field] = (f"bad_{field}", f"at most {limit} characters")
    if form.about not in ("", contract):
        problems["about"] = ("bad_about", "")
    return problems


# --- usage: traffic and calls; VoIP credit top-ups (zone31) -------------------------------

MAX_PERIOD_DAYS = 366  # a traffic period longer than a year is refused, not summed slowly
CALLS_PER_PAGE = 100


class PeriodProblem(ValueError):
    """A period in a query string the zone cannot show: ``key`` is the wording's message,
    ``value`` what was given (shown back, so the person sees which part was wrong)."""

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"{key}: {value!r}")
        self.key = key
        self.value = value


@dataclass(frozen=True)
class Period:
    """Days ``first`` to ``last`` inclusive, in the customer's calendar; ``month``: the
    month it is, when it is one whole month ("2026-11"), else None (a from-to period)."""

    first: date
    last: date
    month: str | None

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def month_period(month: str) -> Period:
    """``YYYY-MM`` as a period, or PeriodProblem."""
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month)
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise PeriodProblem("bad_month", month[:40])
    year, number = int(m.group(1)), int(m.group(2))
    first = date(year, number, 1)
    following = date(year + number // 12, number % 12 + 1, 1)
    return Period(first, following - timedelta(days=1), f"{year:04d}-{number:02d}")


def pick_period(month: str | None, first: str | None, last: str | None, today: date) -> Period:
    """The period a page's query string asks for: ``from`` and ``to`` (ISO days, both, in
    order, at most ``MAX_PERIOD_DAYS``), else ``month``, else the month of ``today``.
    Anything else is a PeriodProblem naming what was wrong."""
    if first or last:
        days: list[date] = []
        for given in (first or "", last or ""):
            try:
                days.append(date.fromisoformat(given))
            except ValueError:
                raise PeriodProblem("bad_day", given[:40]) from None
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", given):
                raise PeriodProblem("bad_day", given[:40])
        if days[1] < days[0]:
            raise PeriodProblem("bad_order", f"{days[0]} > {days[1]}")
        if (days[1] - days[0]).days >= MAX_PERIOD_DAYS:
            raise PeriodProblem("too_long", f"{days[0]} – {days[1]}")
        return Period(days[0], days[1], None)
    return month_period(month if month else f"{today:%Y-%m}")


# Decimal (SI) units, as operators' tariffs and gear count them (1 GB = 10^9 bytes).
_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def byte_size(count: int) -> tuple[Decimal, str]:
    """``count`` bytes as a number of the largest unit it reaches, to at most three
    significant digits past the unit's first (1 234 567 -> (1.23, "MB"))."""
    if count < 0:
        raise ValueError(f"{count} bytes: expected 0 or more")
    value, unit = Decimal(count), 0
    while value >= 1000 and unit < len(_BYTE_UNITS) - 1:
        value /= 1000
        unit += 1
    places = (
        Decimal(1)
        if unit == 0 or value >= 100
        else Decimal("0.1")
        if value >= 10
        else Decimal("0.01")
    )
    return value.quantize(places, rounding=ROUND_HALF_UP), _BYTE_UNITS[unit]


def duration(seconds: int) -> str:
    """A call's length as people read it: ``m:ss``, or ``h:mm:ss`` from an hour."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def minutes(seconds: int) -> int:
    """Whole minutes of a month's calls, a started minute counted (as operators bill)."""
    return -(-seconds // 60)


def page_number(given: str | None, total: int, per_page: int = CALLS_PER_PAGE) -> int:
    """The page asked for (1-based) within ``total`` rows; absent: the first. A page that
    is no number or past the last is a PeriodProblem (the page says which)."""
    pages = max(1, -(-total // per_page))
    if not given:
        return 1
    if not given.isdigit() or not 1 <= int(given[:6]) <= pages or len(given) > 6:
        raise PeriodProblem("bad_page", given[:40])
    return int(given)


@dataclass(frozen=True)
class CapView:
    """What the top-up page says of this month's cap: ``known`` False before any answer
    this month (then ``cap_minor`` is the last cap an answer named, if any)."""

    known: bool
    cap_minor: int | None
    left_minor: int | None


def cap_view(month: str, answers: Sequence[tuple[str | None, int | None, int | None]]) -> CapView:
    """This month's cap and what is left, from the answers (month, cap, left) newest
    first: the newest answer of ``month`` that names a cap (an operator's top-up names
    none: not capped). Before any this month, the last cap named (what is left then is
    the whole cap, unless the operator changed it: the page says so)."""
    for answer_month, cap, left in answers:
        if answer_month == month and cap is not None:
            return CapView(True, cap, left)
    last = next((cap for _, cap, _ in answers if cap is not None), None)
    return CapView(False, last, None)


# --- the call-price lookup (usage_pages.price) --------------------------------------------

MAX_QUOTE_SECONDS = 24 * 3600


def price_quote(
    prices: pricelist.PriceList, number: str, seconds: str, day: date, country_prefix: str
) -> tuple[str | None, pricelist.Quote | None]:
    """A customer's lookup: the quote, or the wording key of what is wrong (a length that is
    no whole number of seconds up to a day, a number that is no number, none priced)."""
    if not seconds.isdigit() or not 0 < int(seconds) <= MAX_QUOTE_SECONDS:
        return "price_bad_seconds", None
    try:
        return None, prices.quote(number, day, int(seconds), country_prefix)
    except pricelist.NumberError:
        return "price_bad_number", None
    except pricelist.NoPrice:
        return "price_no_price", None
