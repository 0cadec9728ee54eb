"""Payments worker: pairs every movement on ``payments.received`` with invoices."""

from __future__ import annotations

from services.payments.service import Payments
from services.runtime.consumer import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[str, dict[str, Handler]]:
    p = Payments(rt.settings, rt.topics)
    return {
        rt.topics.contracts: {"contract.upserted.v1": p.on_contract},
        rt.topics.invoices: {"invoice.issued.v1": p.on_invoice_issued},
        rt.topics.payments_received: {"payment.received.v1": p.on_payment_received},
    }


SPEC = ServiceSpec(name="payments", subscriptions=subscriptions)

if __name__ == "__main__":
    run(SPEC)
