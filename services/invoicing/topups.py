"""VoIP credit top-ups (issue 29 item 6): a request (``topup.requested``, from the zone or
``billing topup request``) is invoiced, or refused with its reason, once per contract and
request id; a paid top-up invoice becomes ``voip_credit.purchased``, once. The decisions
(the cap, the month) are ``domain.decide_topup``; this module reads the facts, writes the
outcome and queues its events inside the caller's transaction (a unit of work)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from schemas import events as ev
from services.invoicing import billed, documents, domain, issued, service
from services.invoicing.settings import InvoicingSettings
from services.runtime import sql
from services.runtime.audit import UnknownContract
from services.runtime.runs import Handler, Run
from services.runtime.unit import Unit

Q = sql.load(__file__, "topups.sql")


@dataclass(frozen=True)
class Outcome:
    """A request as decided: its invoice, or why not; ``new``: decided by this call (False:
    the same request id was answered before, and nothing was done again)."""

    contract: str
    request_id: str
    new: bool
    invoice_number: str | None
    amount_minor: int | None
    currency: str | None
    month: str
    reason_code: str | None
    reason: str | None
    due_on: date | None = None


def _outcome(row: Mapping[str, Any], new: bool) -> Outcome:
    return Outcome(
        row["contract"], row["request_id"], new, row["invoice_number"], row["amount_minor"],
        (row["currency"] or "").strip() or None, row["month"], row["reason_code"], row["reason"],
        row["due_on"],
    )  # fmt: skip


def operator_day(settings: InvoicingSettings, now: datetime) -> date:
    """Today in the operator's time zone (the supplier's country's)."""
    return domain.local_day(now, (settings.supplier_country or "CZ").strip().upper())


async def request(unit: Unit, settings: InvoicingSettings, asked: ev.TopupRequested) -> Outcome:
    """Decide ``asked`` and write its outcome: an invoice for the coupon's amount (VS the
    contract, SS the invoice number, published as ``invoice.issued`` and
    ``topup.invoiced``) or ``topup.refused`` with the reason.

    Steps, in this order, all in the caller's transaction:
    1. the year's invoice series is locked (``lock_sequence``, as a billing run's chunk and
       an invoice of its own take it), then the contract's top-up row (``lock_topups``): a
       second request of the contract, here or on another connection, waits until this one
       commits. Always in that order: a transaction that holds the series (the worker's
       batch, after its first top-up) may wait for a contract's row, but nobody holding a
       contract's row waits for the series (``set_cap`` takes no series), so no deadlock;
    2. under the locks, a request id already decided is answered from its row: nothing is
       issued or published again;
    3. the month's self-service top-ups issued so far are summed and ``decide_topup``
       decides; the invoice is written under the same locks, so the sum it was decided on
       is still the truth when it commits."""
    conn = unit.conn
    contract = await conn.fetchrow(service.Q.billable_contract, asked.contract)
    day = operator_day(settings, unit.now)
    month = domain.month_of(day)
    if contract is not None:
        await conn.fetchval(service.Q.lock_sequence, day.year)
        own = await conn.fetchrow(Q.lock_topups, asked.contract)
        before = await conn.fetchrow(Q.get_topup_request, asked.contract, asked.request_id)
        if before is not None:
            return _outcome(before, new=False)
        currency = contract["currency"].strip()
        facts = domain.TopupFacts(
            known=True,
            active=contract["active"],
            currency=currency,
            cap_minor=domain.topup_cap(own["cap_minor"], currency, settings.topup_cap_minor),
            issued_minor=await conn.fetchval(Q.topups_issued, asked.contract, month),
        )
    else:  # nothing to lock: a refusal, recorded once by its key
        facts = domain.TopupFacts(False, False, "", 0, 0)
    ask = domain.TopupAsk(
        asked.coupon, asked.amount_minor, asked.currency, asked.requested_by == "customer"
    )
    decided = domain.decide_topup(asked.contract, month, ask, facts, settings.coupons())
    if isinstance(decided, domain.TopupGranted):
        assert contract is not None  # granted only to a known contract
        try:
            return await _invoice(unit, settings, asked, contract, decided, day, month)
        except documents.DocumentError as e:
            decided = domain.TopupRefusal(
                "cannot_invoice", f"contract {asked.contract} cannot be invoiced: {e}"
            )
    return await _refuse(unit, asked, decided, month)


async def _invoice(
    unit: Unit,
    settings: InvoicingSettings,
    asked: ev.TopupRequested,
    contract: Mapping[str, Any],
    granted: domain.TopupGranted,
    day: date,
    month: str,
) -> Outcome:
    language = contract["language"] if contract["language"] in billed.TOPUP else "en"
    item = billed.topup_item(granted.amount_minor, language)
    due_on = day + timedelta(days=settings.topup_due_days)
    # VAT included whatever the contract's prices are: the coupon is what the customer pays
    # and the credit they get
    inv = await issued.own_invoice(unit, settings, contract, [item], day, "topup", due_on, True)
    if inv is None or inv.amount_minor != granted.amount_minor:
        raise AssertionError(f"a top-up of {granted.amount_minor} invoiced as {inv}")
    await _record(unit, asked, month, (granted.amount_minor, granted.currency), inv.invoice_number)
    unit.emit(
        asked.contract,
        ev.TopupInvoiced(
            contract=asked.contract,
            request_id=asked.request_id,
            invoice_number=inv.invoice_number,
            vs=inv.vs,
            ss=inv.ss,
            amount_minor=inv.amount_minor,
            currency=inv.currency,
            coupon=asked.coupon,
            issued_on=inv.issued_on,
            due_on=inv.due_on,
            account=settings.bank_accounts.get(inv.currency, ""),
            month=month,
            cap_minor=granted.cap_minor,
            left_minor=granted.left_minor,
        ),
    )
    return Outcome(
        asked.contract, asked.request_id, True, inv.invoice_number, inv.amount_minor,
        inv.currency, month, None, None, inv.due_on,
    )  # fmt: skip


async def _refuse(
    unit: Unit, asked: ev.TopupRequested, refusal: domain.TopupRefusal, month: str
) -> Outcome:
    added = await _record(unit, asked, month, (asked.amount_minor, asked.currency), None, refusal)
    if added is None:  # an unknown contract's request id seen before: its first answer
        row = await unit.conn.fetchrow(Q.get_topup_request, asked.contract, asked.request_id)
        return _outcome(row, new=False)
    unit.emit(
        asked.contract,
        ev.TopupRefused(
            contract=asked.contract,
            request_id=asked.request_id,
            reason_code=refusal.code,
            reason=refusal.reason,
            coupon=asked.coupon,
            amount_minor=asked.amount_minor,
            currency=asked.currency,
            month=month,
            cap_minor=refusal.cap_minor,
            left_minor=refusal.left_minor,
        ),
    )
    return Outcome(
        asked.contract, asked.request_id, True, None, asked.amount_minor, asked.currency,
        month, refusal.code, refusal.reason,
    )  # fmt: skip


async def _record(
    unit: Unit,
    asked: ev.TopupRequested,
    month: str,
    amount: tuple[int | None, str | None],
    invoice_number: str | None,
    refusal: domain.TopupRefusal | None = None,
) -> str | None:
    """The request's outcome, once: its id, or None when it was recorded before."""
    why = (None, None) if refusal is None else (refusal.code, refusal.reason)
    return await unit.conn.fetchval(  # type: ignore[no-any-return]
        Q.record_topup, asked.contract, asked.request_id, asked.requested_by, asked.who,
        asked.coupon, *amount, month, unit.now, invoice_number, *why,
    )  # fmt: skip


def on_requested(settings: InvoicingSettings) -> Handler:
    """The worker's handler of ``topup.requested``: each request in turn, in the batch's
    transaction."""

    async def handle(unit: Unit, run: Run[ev.TopupRequested]) -> None:
        for asked in run:
            await request(unit, settings, asked)

    return handle


async def on_settled(unit: Unit, run: Run[ev.InvoiceSettled]) -> None:
    """Invoices settled (``service.on_settled``), and for each top-up invoice among them
    that was paid, ``voip_credit.purchased`` once: the row is marked in the same statement
    that finds it, so a redelivery, or the invoice reopened and settled again, finds it
    marked and adds nothing."""
    await service.on_settled(unit, run)
    settled = [(d.invoice_number, d.amount_minor, d.paid_minor, d.settled_on) for d in run]
    numbers, asks, paid, days = (list(c) for c in zip(*settled, strict=True))
    for r in await unit.conn.fetch(Q.credit_paid_topups, numbers, asks, paid, days):
        unit.emit(
            r["contract"],
            ev.VoipCreditPurchased(
                contract=r["contract"],
                request_id=r["request_id"],
                invoice_number=r["invoice_number"],
                amount_minor=r["credit_minor"],
                currency=r["currency"].strip(),
                paid_on=r["paid_on"],
            ),
        )


# --- the operators' side ----------------------------------------------------------------


async def set_cap(
    conn: asyncpg.Connection, contract: str, cap_minor: int, now: datetime, operator: str
) -> tuple[int | None, str]:
    """Contract ``contract``'s own monthly cap is ``cap_minor`` (under its lock, so a
    request deciding now sees the old cap or the new, never half); returns its own cap
    before (None: the default) and its currency."""
    row = await conn.fetchrow(service.Q.billable_contract, contract)
    if row is None:
        raise UnknownContract(contract, "invoicing")
    was = await conn.fetchrow(Q.lock_topups, contract)
    await conn.execute(Q.set_topup_cap, contract, cap_minor, now, operator)
    return was["cap_minor"], row["currency"].strip()


@dataclass(frozen=True)
class Month:
    """A contract's top-ups of a month: each request with its outcome, the cap, what its
    self-service top-ups issued came to and what is left."""

    contract: str
    month: str
    currency: str
    cap_minor: int
    own_cap: bool  # set by an operator (else the currency's default)
    issued_minor: int
    left_minor: int
    requests: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "contract": self.contract, "month": self.month, "currency": self.currency,
            "cap_minor": self.cap_minor, "own_cap": self.own_cap,
            "issued_minor": self.issued_minor, "left_minor": self.left_minor,
            "topups": self.requests,
        }  # fmt: skip


async def month(
    conn: asyncpg.Connection, settings: InvoicingSettings, contract: str, month: str
) -> Month:
    row = await conn.fetchrow(service.Q.billable_contract, contract)
    if row is None:
        raise UnknownContract(contract, "invoicing")
    currency = row["currency"].strip()
    own = await conn.fetchrow(Q.get_topup_cap, contract)
    own_cap = None if own is None else own["cap_minor"]
    cap = domain.topup_cap(own_cap, currency, settings.topup_cap_minor)
    spent = await conn.fetchval(Q.topups_issued, contract, month)
    keep = (
        *("request_id", "requested_by", "who", "coupon", "amount_minor", "invoice_number"),
        *("invoice_status", "due_on", "reason_code", "reason", "decided_at", "paid_on"),
    )
    requests = [
        {k: r[k] for k in keep} for r in await conn.fetch(Q.topups_of_month, contract, month)
    ]
    return Month(
        contract, month, currency, cap, own_cap is not None, spent, max(0, cap - spent), requests
    )
