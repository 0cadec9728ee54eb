"""Dunning worker: recomputes a contract's dunning state on every fact and timer."""

from __future__ import annotations

from services.dunning.service import Dunning
from services.dunning.settings import DunningSettings
from services.runtime.consumer import Handler
from services.runtime.timers import BatchTimerHandler, TimerHandler
from services.runtime.worker import Runtime, ServiceSpec, run

_instances: dict[int, Dunning] = {}


def _dunning(rt: Runtime) -> Dunning:
    return _instances.setdefault(id(rt), Dunning(rt.settings, rt.topics))


def subscriptions(rt: Runtime) -> dict[str, dict[str, Handler]]:
    d = _dunning(rt)
    return {
        rt.topics.contracts: {"contract.upserted.v1": d.on_contract},
        rt.topics.invoices: {"invoice.issued.v1": d.on_invoice_issued},
        rt.topics.payments: {
            "invoice.settled.v1": d.on_invoice_settled,
            "invoice.partially_paid.v1": d.on_partially_paid,
            "invoice.reopened.v1": d.on_reopened,
            "payment.unmatched.v1": d.on_unmatched,
            "payment.matched.v1": d.on_matched,
        },
        rt.topics.notices: {
            "notice.acknowledged.v1": d.on_acknowledged,
            "promise.made.v1": d.on_promise,
        },
    }


def timer(rt: Runtime) -> TimerHandler:
    return _dunning(rt).on_timer


def timer_batch(rt: Runtime) -> BatchTimerHandler:
    return _dunning(rt).on_timers


SPEC = ServiceSpec(
    name="dunning",
    metrics_port=9103,
    settings=DunningSettings,
    subscriptions=subscriptions,
    timer=timer,
    timer_batch=timer_batch,
    # an upsert on the invoice number that keeps what payments changed since, then the
    # contract decided again from its facts (tests/integration/test_dunning_scenarios.py)
    keyed=frozenset({"invoice.issued.v1"}),
)

if __name__ == "__main__":
    run(SPEC)
