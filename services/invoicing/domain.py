"""Invoicing decisions: due dates, numbering, what a billing run issues, and whether a VoIP
credit top-up is invoiced under its contract's monthly cap. Pure: no I/O, no clock; the
caller passes the issue date or "now"."""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from schemas.coupons import Coupon
from schemas.events import Contact, TopupRefusalCode


@dataclass(frozen=True)
class DueRule:
    """When an invoice falls due: a fixed day of the month, or N days after issue."""

    kind: Literal["day_of_month", "days_after_issue"]
    value: int

    def __post_init__(self) -> None:
        if self.kind == "day_of_month" and not 1 <= self.value <= 31:
            raise ValueError(f"day_of_month must be 1..31, got {self.value}")
        if self.kind == "days_after_issue" and not 0 <= self.value <= 365:
            raise ValueError(f"days_after_issue must be 0..365, got {self.value}")

    def due_on(self, issued_on: date) -> date:
        if self.kind == "days_after_issue":
            return issued_on + timedelta(days=self.value)
        year, month = issued_on.year, issued_on.month
        candidate = _clamped(year, month, self.value)
        if candidate < issued_on:  # that day has passed this month: the next month's
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            candidate = _clamped(year, month, self.value)
        return candidate


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class BillableContract:
    contract: str
    active: bool
    charges_minor: int  # what its invoice's lines come to this period, late fees apart
    currency: str
    due_rule: DueRule


class NewInvoice(NamedTuple):
    """An invoice a billing run issues. A named tuple, immutable as a frozen dataclass is,
    at half its cost to build, a million times a run (docs/performance.md#finding-29)."""

    contract: str
    invoice_number: str
    vs: str
    ss: str
    period: str
    issued_on: date
    due_on: date
    amount_minor: int
    currency: str
    fees_minor: int = 0  # late fees included in amount_minor


NumberStyle = Literal["yyyy6", "yy8"]


def invoice_number(year: int, sequence: int, style: NumberStyle = "yyyy6") -> str:
    """Ten digits, so the number itself is a valid specific symbol: ``YYYY`` + six digits
    (up to 999,999 invoices a year), or for large operators ``YY`` + eight digits (up to
    99,999,999: a million contracts billed monthly)."""
    prefix, width = _number_prefix(year, style)
    if not 1 <= sequence < 10**width:
        hint = (
            ""
            if style == "yy8"
            else (" (more than 999,999 invoices a year needs BILLING_INVOICE_NUMBER_STYLE=yy8)")
        )
        raise ValueError(f"invoice sequence {sequence} out of range for year {year}{hint}")
    return f"{prefix}{sequence:0{width}d}"


def validate_period(period: str) -> tuple[int, int]:
    try:
        year_s, month_s = period.split("-")
        year, month = int(year_s), int(month_s)
    except ValueError:
        raise ValueError(f"period must look like 2026-12, got {period!r}") from None
    if not (2000 <= year <= 2100 and 1 <= month <= 12) or len(period) != 7:
        raise ValueError(f"period must look like 2026-12, got {period!r}")
    return year, month


def billing_run(
    contracts: list[BillableContract],
    period: str,
    issued_on: date,
    already_invoiced: set[str],
    last_sequence: int,
    fees: dict[str, int] | None = None,
    style: NumberStyle = "yyyy6",
) -> list[NewInvoice]:
    """One invoice per active, not yet invoiced contract with charges, for ``period``;
    late fees waiting for the contract (``fees``, minor units in its currency) are added.

    Running the same period again issues nothing for the contracts already invoiced."""
    fees = fees or {}
    validate_period(period)
    issued: list[NewInvoice] = []
    sequence = last_sequence
    due: dict[DueRule, date] = {}  # most contracts share a handful of rules
    prefix, width = _number_prefix(issued_on.year, style)
    for c in sorted(contracts, key=lambda c: c.contract):
        if not c.active or c.charges_minor <= 0 or c.contract in already_invoiced:
            continue
        sequence += 1
        number = f"{prefix}{sequence:0{width}d}"
        due_on = due.get(c.due_rule) or due.setdefault(c.due_rule, c.due_rule.due_on(issued_on))
        fee = fees.get(c.contract, 0)
        issued.append(
            NewInvoice(
                contract=c.contract,
                invoice_number=number,
                vs=c.contract,
                ss=number,
                period=period,
                issued_on=issued_on,
                due_on=due_on,
                amount_minor=c.charges_minor + fee,
                currency=c.currency,
                fees_minor=fee,
            )
        )
    if issued:  # the numbers run from last_sequence + 1 up: the last one is the one to check
        invoice_number(issued_on.year, sequence, style)
    return issued


def _number_prefix(year: int, style: NumberStyle) -> tuple[str, int]:
    return (f"{year % 100:02d}", 8) if style == "yy8" else (f"{year:04d}", 6)


# --- VoIP credit top-ups (issue 29 item 6) ----------------------------------------------

# The operator's time zone, by the supplier's country: a top-up's issue date and the
# calendar month of its cap are the operator's (a request at 00:30 in Prague on 1 March is
# March's, though it is still February in UTC).
OPERATOR_TIMEZONES = {"CZ": "Europe/Prague", "SK": "Europe/Bratislava", "HU": "Europe/Budapest"}


def local_day(now: datetime, country: str) -> date:
    """The operator's day at ``now`` (an aware time), in the supplier's ``country``."""
    if now.tzinfo is None:
        raise ValueError(f"a time with its zone, got {now.isoformat()}")
    return now.astimezone(ZoneInfo(OPERATOR_TIMEZONES.get(country, "Europe/Prague"))).date()


def month_of(day: date) -> str:
    """The calendar month of ``day`` as a cap counts it (and an invoice's period): 2027-03."""
    return f"{day.year:04d}-{day.month:02d}"


def money(minor: int, currency: str) -> str:
    """An amount as a person reads it in a sentence: 1000.00 CZK."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} {currency}"


@dataclass(frozen=True)
class TopupAsk:
    """What a request asks: a coupon's code, or an amount in a currency."""

    coupon: str | None
    amount_minor: int | None
    currency: str | None
    self_service: bool  # the customer's own (capped); False: an operator's


@dataclass(frozen=True)
class TopupFacts:
    """The contract as its lock holds it (None: unknown) and this month's self-service
    top-ups issued so far, paid or not (the cap guards against a stolen password: an
    unpaid invoice counts)."""

    known: bool
    active: bool
    currency: str
    cap_minor: int
    issued_minor: int


@dataclass(frozen=True)
class TopupGranted:
    amount_minor: int
    currency: str
    coupon: str | None
    cap_minor: int | None  # None: an operator's top-up, not capped
    left_minor: int | None  # what self-service top-ups may still issue this month


@dataclass(frozen=True)
class TopupRefusal:
    code: TopupRefusalCode
    reason: str
    cap_minor: int | None = None
    left_minor: int | None = None


def topup_cap(own_minor: int | None, currency: str, defaults: Mapping[str, int]) -> int:
    """The contract's monthly cap: the operator's for it, else the currency's default
    (a currency without a default: 0, so no self-service top-up before one is set)."""
    return own_minor if own_minor is not None else defaults.get(currency, 0)


def decide_topup(
    contract: str,
    month: str,
    ask: TopupAsk,
    facts: TopupFacts,
    coupons: Mapping[str, Coupon],
) -> TopupGranted | TopupRefusal:
    """Whether a top-up request is invoiced, and for how much, or why not.

    In order: the contract must be known and active; a coupon must be on the list, an
    amount a customer gives must be one a coupon of that currency offers (an operator may
    give any); the currency must be the contract's; a self-service request must fit under
    the month's cap with the self-service top-ups already issued this month."""
    if not facts.known:
        return TopupRefusal("unknown_contract", f"no contract {contract}")
    if not facts.active:
        return TopupRefusal("inactive_contract", f"contract {contract} is not active")
    offered = sorted(coupons.values(), key=lambda c: (c.currency, c.amount_minor, c.code))
    if ask.coupon is not None:
        coupon = coupons.get(ask.coupon)
        if coupon is None:
            codes = ", ".join(c.code for c in offered if c.currency == facts.currency)
            return TopupRefusal(
                "unknown_coupon",
                f"no coupon {ask.coupon!r}; contract {contract} can top up with: {codes or 'none'}",
            )
        amount, currency = coupon.amount_minor, coupon.currency
    else:
        if ask.amount_minor is None or ask.currency is None:
            raise ValueError("a top-up asks a coupon or an amount with its currency")
        amount, currency = ask.amount_minor, ask.currency
    if currency != facts.currency:
        return TopupRefusal(
            "wrong_currency",
            f"{money(amount, currency)} asked; contract {contract} is billed in {facts.currency}",
        )
    amounts = [c.amount_minor for c in offered if c.currency == currency]
    if ask.coupon is None and ask.self_service and amount not in amounts:
        listed = ", ".join(money(a, currency) for a in sorted(set(amounts)))
        return TopupRefusal(
            "amount_not_offered",
            f"no coupon of {money(amount, currency)}; the coupons are {listed or 'none'}",
        )
    if not ask.self_service:
        return TopupGranted(amount, currency, ask.coupon, None, None)
    left = max(0, facts.cap_minor - facts.issued_minor)
    if amount > left:
        return TopupRefusal(
            "over_cap",
            f"over the monthly top-up cap of {money(facts.cap_minor, currency)}: contract "
            f"{contract}'s top-ups issued in {month} come to "
            f"{money(facts.issued_minor, currency)}, {money(left, currency)} is left this "
            f"month and {money(amount, currency)} was asked",
            facts.cap_minor,
            left,
        )
    return TopupGranted(amount, currency, ask.coupon, facts.cap_minor, left - amount)


# --- contacts changed by the customer in the zone ------------------------------------------


class ContactChangeRefused(ValueError):
    """A customer's contact change that cannot be applied; the message says why."""


def _same_contact(a: Contact, b: Contact) -> bool:
    """The contact the zone showed is this one (the zone keeps e-mails in lower case)."""
    return a.model_copy(update={"email": (a.email or "").lower()}) == b.model_copy(
        update={"email": (b.email or "").lower()}
    )


def changed_contacts(
    contacts: Sequence[Contact],
    action: Literal["add", "change", "remove"],
    before: Contact | None,
    after: Contact | None,
) -> list[Contact]:
    """The contract's contacts after a change a customer asked for in the zone. ``before``
    must be one of them as the zone showed it: a contact changed meanwhile (by the
    contracts file, by another person) is not overwritten unseen but refused. The owner
    contact stays the owner and is never removed; an added contact is never the owner."""
    out = list(contacts)
    if action == "add":
        assert after is not None
        added = after.model_copy(update={"owner": False})
        if any(_same_contact(added, c) for c in out):
            raise ContactChangeRefused("this contact is on record already")
        return [*out, added]
    assert before is not None
    found = next((i for i, c in enumerate(out) if _same_contact(before, c)), None)
    if found is None:
        raise ContactChangeRefused("the contact is no longer as shown (changed meanwhile)")
    if action == "remove":
        if out[found].owner:
            raise ContactChangeRefused("the owner contact cannot be removed")
        del out[found]
        return out
    assert after is not None
    out[found] = after.model_copy(update={"owner": out[found].owner})
    return out
