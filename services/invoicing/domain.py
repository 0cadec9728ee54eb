"""Invoicing decisions: due dates, numbering and what a billing run issues. Pure: no I/O,
no clock; the caller passes the issue date."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, NamedTuple

from schemas.events import Contact


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
