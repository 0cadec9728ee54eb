"""What pairing decided, written: the movements, allocations, credit lots and invoice
figures in payments' tables, and the events that tell the other services, in the caller's
transaction. ``domain`` decided it all; nothing here reads a table to decide."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.payments import domain
from services.runtime import sql
from services.runtime.db import Jsonb
from services.runtime.unit import Unit, columns

Q = sql.load(__file__)


class BankTx(NamedTuple):
    """A ``bank_transactions`` row as ``insert_bank_tx`` takes it ($1-$18 in this order) and
    ``insert_matched_txs`` a batch of them (one array a field). A tuple, so it goes to
    asyncpg as it is; built by name, so no field lands in another's column."""

    account: str
    bank_tx_id: str
    event_id: uuid.UUID
    booked_on: date
    amount_minor: int
    currency: str
    vs: str | None
    ss: str | None
    data: Jsonb  # the event's data as received
    contract: str | None
    status: str  # matched, unmatched (reversed and reversal come later, by update)
    reason_code: str | None  # why unmatched
    reason: str | None
    received_at: datetime
    counterparty_account: str | None
    counterparty_name: str | None
    message: str | None
    rule: str | None  # the rule that paired it


def _bank_tx(
    unit: Unit,
    event: CloudEvent,
    data: ev.PaymentReceived,
    status: str,
    contract: str | None = None,
    unmatched: domain.Unmatched | None = None,
    rule: str | None = None,
) -> BankTx:
    return BankTx(
        account=data.account,
        bank_tx_id=data.bank_tx_id,
        event_id=event.id,
        booked_on=data.booked_on,
        amount_minor=data.amount_minor,
        currency=data.currency,
        vs=data.vs,
        ss=data.ss,
        data=Jsonb(data.model_dump_json()),
        contract=contract,
        status=status,
        reason_code=unmatched.code if unmatched else None,
        reason=unmatched.reason if unmatched else None,
        received_at=unit.now,
        counterparty_account=data.counterparty_account,
        counterparty_name=data.counterparty_name,
        message=data.message,
        rule=rule,
    )


@dataclass
class _Writes:
    """Pairings' writes, gathered and written at once: one statement per table, one array a
    column, not a statement per row (under load each is a wait for PostgreSQL)."""

    txs: list[BankTx] = field(default_factory=list)
    allocations: list[tuple[Any, ...]] = field(default_factory=list)
    lots: list[tuple[Any, ...]] = field(default_factory=list)
    paid: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # final figures per invoice

    def add(self, mv: domain.Movement, matched: domain.Matched) -> None:
        for a in matched.allocations:
            self.allocations.append(
                (mv.account, mv.bank_tx_id, a.invoice.invoice_number, a.amount_minor, a.rule)
            )
        if matched.credit_minor:
            self.lots.append(
                (mv.account, mv.bank_tx_id, matched.contract, mv.currency, matched.credit_minor)
            )
        for o in matched.outcomes:
            number = o.invoice.invoice_number
            self.paid[number] = (number, o.paid_minor, o.settled, o.forgiven_minor)

    async def flush(self, unit: Unit) -> None:
        conn = unit.conn
        if self.txs:
            await conn.execute(Q.insert_matched_txs, *columns(self.txs))
        if self.allocations:
            await conn.execute(Q.insert_allocations, *columns(self.allocations))
        if self.lots:  # rare (overpayments); a lot can take two amounts, so row by row
            await conn.executemany(Q.add_credit_lot, self.lots)
        if self.paid:
            await conn.execute(Q.update_invoices_paid, *columns(list(self.paid.values())))
        self.txs, self.allocations, self.lots, self.paid = [], [], [], {}


async def write(
    unit: Unit,
    received: Sequence[tuple[CloudEvent, ev.PaymentReceived]],
    decisions: Sequence[domain.Decision],
) -> None:
    """Write the decisions on ``received`` (one each, in order) and emit their events."""
    writes = _Writes()
    for (event, data), decision in zip(received, decisions, strict=True):
        if isinstance(decision, domain.Paired):
            matched = decision.matched
            writes.txs.append(
                _bank_tx(unit, event, data, "matched", matched.contract, None, matched.rule)
            )
            writes.add(decision.movement, matched)
            _emit_matched(unit, decision, event.time)
        elif isinstance(decision, domain.Queued):
            if await _store(unit, event, data, "unmatched", why=decision.why):
                _emit_unmatched(unit, data, decision.why)
        elif isinstance(decision, domain.Reversed):
            await writes.flush(unit)  # the credit it takes back may be among them
            if await _store(unit, event, data, "unmatched"):
                await _reverse(unit, decision.reversal)
    await writes.flush(unit)


async def _store(
    unit: Unit,
    event: CloudEvent,
    data: ev.PaymentReceived,
    status: str,
    why: domain.Unmatched | None = None,
) -> bool:
    stored = await unit.conn.fetchval(
        Q.insert_bank_tx, *_bank_tx(unit, event, data, status, None, why)
    )
    return stored is not None  # None: the same bank movement again, already handled


async def assign(
    unit: Unit, paired: domain.Paired, operator: str, note: str | None, remember_payer: bool
) -> None:
    """An operator's assignment: the movement out of the queue, the payer's account
    confirmed if asked, and the pairing written as any other."""
    conn, mv, contract = unit.conn, paired.movement, paired.matched.contract
    await conn.execute(
        Q.mark_assigned, mv.account, mv.bank_tx_id, contract, operator, note, unit.now
    )
    if remember_payer:
        await conn.execute(
            Q.confirm_payer, mv.counterparty_account, contract, operator, unit.now, note
        )
    writes = _Writes()
    writes.add(mv, paired.matched)
    _emit_matched(unit, paired)
    await writes.flush(unit)


async def spend_credit(
    unit: Unit,
    used: list[tuple[domain.CreditLot, int]],
    outcome: domain.InvoiceOutcome,
) -> None:
    """A new invoice paid from its contract's credit lots, each what it gave."""
    conn = unit.conn
    number = outcome.invoice.invoice_number
    for lot, amount in used:
        await conn.execute(Q.spend_credit_lot, lot.order, amount)
        await conn.execute(
            Q.insert_allocation, lot.account, lot.bank_tx_id, number, amount, "credit"
        )
    await conn.execute(
        Q.update_invoice_paid, number, outcome.paid_minor, outcome.settled, outcome.forgiven_minor
    )
    _emit_outcomes(unit, [outcome], unit.now.date())


async def credit_note(unit: Unit, c: domain.Credited, on: date) -> None:
    """An invoice a credit note lowered: its figures, what it gave back of what was paid
    (a negative allocation and the same into the paying payment's credit lot), and the
    invoice's outcome told as a payment's is, when it changed: settled now, or still open
    for less."""
    conn, inv, o = unit.conn, c.invoice, c.outcome
    for account, bank_tx_id, amount in c.to_credit:
        await conn.execute(
            Q.insert_allocation, account, bank_tx_id, inv.invoice_number, -amount, "credit_note"
        )
        await conn.execute(
            Q.add_credit_lot, account, bank_tx_id, inv.contract, inv.currency, amount
        )
    await conn.execute(
        Q.credit_invoice,
        inv.invoice_number,
        o.invoice.amount_minor,
        c.credited_minor,
        o.paid_minor,
        o.settled,
        o.forgiven_minor,
    )
    if not c.was_settled:
        _emit_outcomes(unit, [o], on)


async def _reverse(unit: Unit, r: domain.Reversal) -> None:
    """Take back what the reversed credit paid, as ``domain.reverse`` decided."""
    conn, original = unit.conn, r.original
    await conn.execute(
        Q.mark_reversed, original.account, original.bank_tx_id, r.debit_tx_id, unit.now
    )
    await conn.execute(
        Q.mark_reversal, original.account, r.debit_tx_id, original.bank_tx_id, unit.now, r.contract
    )
    reopened: list[ev.Allocation] = []
    if r.contract is not None:
        await conn.execute(Q.reverse_allocations, r.allocation_ids)
        for x in r.reopened:
            inv, outcome = x.invoice, x.outcome
            await conn.execute(
                Q.update_invoice_paid,
                inv.invoice_number,
                outcome.paid_minor,
                outcome.settled,
                outcome.forgiven_minor,
            )
            reopened.append(
                ev.Allocation(
                    invoice_number=inv.invoice_number,
                    ss=inv.ss,
                    amount_minor=x.amount_minor,
                    rule="reversal",
                )
            )
            if not outcome.settled:
                unit.emit(
                    inv.contract,
                    ev.InvoiceReopened(
                        contract=inv.contract,
                        invoice_number=inv.invoice_number,
                        ss=inv.ss,
                        amount_minor=inv.amount_minor,
                        paid_minor=outcome.paid_minor,
                        remaining_minor=outcome.remaining_minor,
                        currency=inv.currency,
                        reason=f"payment {original.bank_tx_id} reversed by {r.debit_tx_id}",
                    ),
                )
        await conn.execute(Q.drop_credit_lot, original.account, original.bank_tx_id)
    unit.emit(
        r.contract or original.vs or original.bank_tx_id,
        ev.PaymentReversed(
            contract=r.contract,
            account=original.account,
            bank_tx_id=original.bank_tx_id,
            reversal_bank_tx_id=r.debit_tx_id,
            booked_on=r.booked_on,
            amount_minor=original.amount_minor,
            currency=original.currency,
            reopened=reopened,
            credit_removed_minor=r.credit_removed_minor,
            credit_balance_minor=r.balance_minor,
        ),
    )


# --- events ---------------------------------------------------------------------------------


def _emit_unmatched(unit: Unit, data: ev.PaymentReceived, why: domain.Unmatched) -> None:
    unit.emit(
        data.vs or data.bank_tx_id,
        ev.PaymentUnmatched(
            account=data.account,
            bank_tx_id=data.bank_tx_id,
            booked_on=data.booked_on,
            amount_minor=data.amount_minor,
            currency=data.currency,
            vs=data.vs,
            ss=data.ss,
            reason_code=why.code,
            reason=why.reason,
        ),
    )


def _emit_matched(unit: Unit, paired: domain.Paired, paid_at: datetime | None = None) -> None:
    mv, matched = paired.movement, paired.matched
    unit.emit(
        matched.contract,
        ev.PaymentMatched(
            contract=matched.contract,
            account=mv.account,
            bank_tx_id=mv.bank_tx_id,
            booked_on=mv.booked_on,
            amount_minor=mv.amount_minor,
            currency=mv.currency,
            allocations=[
                ev.Allocation(
                    invoice_number=a.invoice.invoice_number,
                    ss=a.invoice.ss,
                    amount_minor=a.amount_minor,
                    rule=a.rule,
                )
                for a in matched.allocations
            ],
            credit_minor=matched.credit_minor,
            credit_balance_minor=paired.balance_minor,
            rule=matched.rule,
        ),
    )
    _emit_outcomes(unit, matched.outcomes, mv.booked_on, paid_at)


def _emit_outcomes(
    unit: Unit, outcomes: list[domain.InvoiceOutcome], on: date, paid_at: datetime | None = None
) -> None:
    """``paid_at``: the payments.received event's time when its payment settles them."""
    for o in outcomes:
        inv = o.invoice
        if o.settled:
            unit.emit(
                inv.contract,
                ev.InvoiceSettled(
                    contract=inv.contract,
                    invoice_number=inv.invoice_number,
                    ss=inv.ss,
                    amount_minor=inv.amount_minor,
                    paid_minor=o.paid_minor,
                    currency=inv.currency,
                    settled_on=on,
                    within_tolerance_minor=o.forgiven_minor,
                    paid_at=paid_at,
                ),
            )
        else:
            unit.emit(
                inv.contract,
                ev.InvoicePartiallyPaid(
                    contract=inv.contract,
                    invoice_number=inv.invoice_number,
                    ss=inv.ss,
                    amount_minor=inv.amount_minor,
                    paid_minor=o.paid_minor,
                    remaining_minor=o.remaining_minor,
                    currency=inv.currency,
                ),
            )
