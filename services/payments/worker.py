"""Payments worker: pairs every movement on ``payments.received`` with invoices, and
serves the operators' unmatched queue over HTTP."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from schemas import events as ev
from services.payments import web as payments_web
from services.payments.service import Payments
from services.payments.settings import PaymentsSettings
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[type[BaseModel], Handler]:
    p = Payments(rt.settings)
    return {
        ev.ContractUpserted: p.on_contract,
        ev.InvoiceIssued: p.on_invoice_issued,
        ev.CreditNoteIssued: p.on_credit_note,
        ev.PaymentReceived: p.on_payment_received,
    }


def routes(rt: Runtime, app: web.Application) -> None:
    payments_web.routes(rt, app, Payments(rt.settings))


SPEC = ServiceSpec(
    name="payments",
    metrics_port=9102,
    settings=PaymentsSettings,
    subscriptions=subscriptions,
    routes=routes,
    # an insert on the invoice number that skips one already known, and credit spent only
    # on an invoice it inserted (the conservation test redelivers invoices)
    keyed=frozenset({ev.InvoiceIssued}),
)

if __name__ == "__main__":
    run(SPEC)
