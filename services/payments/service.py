"""Payments handlers: keep the invoice read model, pair movements, apply credit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.payments import domain
from services.runtime import sql
from services.runtime.settings import Settings, Topics
from services.runtime.unit import Unit

Q = sql.load(__file__)


def _open_invoice(row: Any) -> domain.OpenInvoice:
    return domain.OpenInvoice(
        row["invoice_number"],
        row["contract"],
        row["ss"],
        row["due_on"],
        row["amount_minor"],
        row["paid_minor"],
        row["currency"],
    )


class Payments:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics

    def tolerance(self, currency: str) -> int:
        return self.settings.rounding_tolerance.get(currency, 0)

    async def on_contract(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.ContractUpserted)
        await unit.conn.execute(Q.upsert_contract, data.contract, data.currency)

    async def on_invoice_issued(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoiceIssued)
        conn = unit.conn
        inserted = await conn.fetchval(
            Q.insert_invoice,
            data.invoice_number,
            data.contract,
            data.ss,
            data.due_on,
            data.amount_minor,
            data.currency,
        )
        if inserted is None:
            return
        credit = await conn.fetchval(Q.get_credit, data.contract) or 0
        if credit <= 0:
            return
        row = await conn.fetchrow(Q.get_invoice, data.invoice_number)
        applied = domain.apply_credit(credit, _open_invoice(row), self.tolerance(data.currency))
        if applied.outcome is None:
            return
        await conn.execute(Q.set_credit, data.contract, applied.credit_left)
        await self._record_outcomes(unit, [applied.outcome], unit.now.date())

    async def on_payment_received(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.PaymentReceived)
        conn = unit.conn
        mv = domain.Movement(
            data.account,
            data.bank_tx_id,
            data.booked_on,
            data.amount_minor,
            data.currency,
            data.vs,
            data.ss,
        )
        contract = None
        if data.vs is not None:
            row = await conn.fetchrow(Q.get_contract, data.vs)
            contract = domain.ContractInfo(row["contract"], row["currency"]) if row else None
        by_ss = None
        if data.ss is not None:
            row = await conn.fetchrow(Q.open_invoice_by_ss, data.ss)
            by_ss = _open_invoice(row) if row else None
        owner = contract.contract if contract else (by_ss.contract if by_ss else None)
        open_invoices = (
            [_open_invoice(r) for r in await conn.fetch(Q.open_invoices, owner)] if owner else []
        )
        decision = domain.match(mv, contract, open_invoices, by_ss, self.tolerance(data.currency))
        matched = isinstance(decision, domain.Matched)
        stored = await conn.fetchval(
            Q.insert_bank_tx,
            data.account,
            data.bank_tx_id,
            event.id,
            data.booked_on,
            data.amount_minor,
            data.currency,
            data.vs,
            data.ss,
            data.model_dump(mode="json"),
            decision.contract if isinstance(decision, domain.Matched) else None,
            "matched" if matched else "unmatched",
            None if matched else decision.code,  # type: ignore[union-attr]
            None if matched else decision.reason,  # type: ignore[union-attr]
            unit.now,
        )
        if stored is None:
            return  # the same bank movement again (re-imported statement): already handled
        if isinstance(decision, domain.Unmatched):
            unit.emit(
                self.topics.payments,
                "payment.unmatched.v1",
                data.vs or data.bank_tx_id,
                ev.PaymentUnmatched(
                    account=data.account,
                    bank_tx_id=data.bank_tx_id,
                    booked_on=data.booked_on,
                    amount_minor=data.amount_minor,
                    currency=data.currency,
                    vs=data.vs,
                    ss=data.ss,
                    reason_code=decision.code,
                    reason=decision.reason,
                ),
            )
            return
        for a in decision.allocations:
            await conn.execute(
                Q.insert_allocation,
                data.account,
                data.bank_tx_id,
                a.invoice.invoice_number,
                a.amount_minor,
                a.rule,
            )
        balance = await conn.fetchval(Q.get_credit, decision.contract) or 0
        if decision.credit_minor:
            balance += decision.credit_minor
            await conn.execute(Q.set_credit, decision.contract, balance)
        unit.emit(
            self.topics.payments,
            "payment.matched.v1",
            decision.contract,
            ev.PaymentMatched(
                contract=decision.contract,
                account=data.account,
                bank_tx_id=data.bank_tx_id,
                booked_on=data.booked_on,
                amount_minor=data.amount_minor,
                currency=data.currency,
                allocations=[
                    ev.Allocation(
                        invoice_number=a.invoice.invoice_number,
                        ss=a.invoice.ss,
                        amount_minor=a.amount_minor,
                        rule=a.rule,
                    )
                    for a in decision.allocations
                ],
                credit_minor=decision.credit_minor,
                credit_balance_minor=balance,
                rule=decision.rule,
            ),
        )
        await self._record_outcomes(unit, decision.outcomes, data.booked_on)

    async def _record_outcomes(
        self, unit: Unit, outcomes: list[domain.InvoiceOutcome], on: Any
    ) -> None:
        for o in outcomes:
            inv = o.invoice
            await unit.conn.execute(
                Q.update_invoice_paid, inv.invoice_number, o.paid_minor, o.settled, o.forgiven_minor
            )
            if o.settled:
                unit.emit(
                    self.topics.payments,
                    "invoice.settled.v1",
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
                    ),
                )
            else:
                unit.emit(
                    self.topics.payments,
                    "invoice.partially_paid.v1",
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
