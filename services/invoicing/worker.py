"""Invoicing worker. Billing runs and contract loads are commands (``billing invoicing``);
the worker publishes what they commit (outbox relay) and serves metrics."""

from __future__ import annotations

from services.invoicing.service import on_fee_charged, on_partially_paid, on_reopened, on_settled
from services.invoicing.settings import InvoicingSettings
from services.runtime.consumer import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[str, dict[str, Handler]]:
    return {
        rt.topics.payments: {
            "invoice.settled.v1": on_settled,
            "invoice.partially_paid.v1": on_partially_paid,
            "invoice.reopened.v1": on_reopened,
        },
        rt.topics.dunning: {"fee.charged.v1": on_fee_charged},
    }


SPEC = ServiceSpec(
    name="invoicing",
    metrics_port=9101,
    settings=InvoicingSettings,
    subscriptions=subscriptions,
)

if __name__ == "__main__":
    run(SPEC)
