"""Payments worker: pairs every movement on ``payments.received`` with invoices, and
serves the operators' unmatched queue over HTTP."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from schemas import events as ev
from services.payments import web as payments_web
from services.payments.service import Payments
from services.payments.settings import PaymentsSettings
from services.runtime import metrics, sql
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[type[BaseModel], Handler]:
    p = Payments(rt.settings)
    return {
        ev.ContractUpserted: p.on_contract,
        ev.InvoiceIssued: p.on_invoice_issued,
        ev.CreditNoteIssued: p.on_credit_note,
        ev.PaymentReceived: p.on_payment_received,
        ev.StatementImported: p.on_statement_imported,
    }


Q = sql.load(__file__)


async def gauges(rt: Runtime, conn: asyncpg.Connection) -> None:
    """The unmatched queue per currency (every currency we have an account in, and any
    other that came; a queue that emptied shows 0) and the last statement imports."""
    rows = {r["currency"]: r for r in await conn.fetch(Q.unmatched_gauges, rt.clock.now())}
    for currency in set(rt.settings.bank_accounts) | set(rows):
        row = rows.get(currency)
        metrics.UNMATCHED_WAITING.labels(currency).set(row["waiting"] if row else 0)
        metrics.UNMATCHED_AMOUNT.labels(currency).set(row["amount_minor"] / 100 if row else 0)
        metrics.UNMATCHED_OLDEST.labels(currency).set(max(0.0, row["oldest_seconds"]) if row else 0)
    # the last statement imported per account (bank_statement.imported)
    for row in await conn.fetch(Q.statement_import_gauges):
        metrics.STATEMENT_IMPORTED.labels(row["account"]).set(row["at"])


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
    gauges=gauges,
)

if __name__ == "__main__":
    run(SPEC)
