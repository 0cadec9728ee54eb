"""Dunning worker: recomputes a contract's dunning state on every fact and timer."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from schemas import events as ev
from services.dunning.service import Dunning
from services.dunning.settings import DunningSettings
from services.runtime import metrics, sql
from services.runtime.runs import Handler
from services.runtime.timers import BatchTimerHandler, TimerHandler
from services.runtime.worker import Runtime, ServiceSpec, run

_instances: dict[int, Dunning] = {}


def _dunning(rt: Runtime) -> Dunning:
    return _instances.setdefault(id(rt), Dunning(rt.settings))


def subscriptions(rt: Runtime) -> dict[type[BaseModel], Handler]:
    d = _dunning(rt)
    return {
        ev.ContractUpserted: d.on_contract,
        ev.InvoiceIssued: d.on_invoice_issued,
        ev.InvoiceSettled: d.on_invoice_settled,
        ev.InvoicePartiallyPaid: d.on_partially_paid,
        ev.InvoiceReopened: d.on_reopened,
        ev.CreditNoteIssued: d.on_credit_note,
        ev.PaymentUnmatched: d.on_unmatched,
        ev.PaymentMatched: d.on_matched,
        ev.NoticeAcknowledged: d.on_acknowledged,
        ev.PromiseMade: d.on_promise,
    }


def timer(rt: Runtime) -> TimerHandler:
    return _dunning(rt).on_timer


def timer_batch(rt: Runtime) -> BatchTimerHandler:
    return _dunning(rt).on_timers


Q = sql.load(__file__)
STAGES = ("active", "notice", "suspended")  # state.stage's CHECK


async def gauges(rt: Runtime, conn: asyncpg.Connection) -> None:
    """Contracts per dunning stage, for the dunning funnel."""
    await metrics.set_counts(conn, Q.stage_counts, metrics.CONTRACTS_BY_STAGE, STAGES)


SPEC = ServiceSpec(
    name="dunning",
    metrics_port=9103,
    settings=DunningSettings,
    subscriptions=subscriptions,
    timer=timer,
    timer_batch=timer_batch,
    # an upsert on the invoice number that keeps what payments changed since, then the
    # contract decided again from its facts (tests/integration/test_dunning_scenarios.py)
    keyed=frozenset({ev.InvoiceIssued}),
    gauges=gauges,
)


if __name__ == "__main__":
    run(SPEC)
