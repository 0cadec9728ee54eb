"""Notify worker: e-mails dunning messages, invoices and credit notes with their PDF and
ISDOC, and a prepaid VoIP credit running low or out, to the right contacts, once each."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from schemas import events as ev
from services.notify.service import KINDS, VOIP_KINDS, Notify, Q, Sender
from services.notify.settings import NotifySettings
from services.runtime import metrics
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[type[BaseModel], Handler]:
    n = Notify(rt.settings)
    return {
        ev.ContractUpserted: n.on_contract,
        ev.DocumentReady: n.on_document,
        **dict.fromkeys(KINDS, n.on_request),
        **dict.fromkeys(VOIP_KINDS, n.on_voip_credit),
    }


async def sender(rt: Runtime) -> None:
    await Sender(rt.settings, rt.topics, rt.db, rt.clock).run(rt.settings.timer_poll_interval)


async def gauges(rt: Runtime, conn: asyncpg.Connection) -> None:
    row = await conn.fetchrow(Q.pending_gauges, rt.clock.now())
    metrics.NOTIFICATIONS_PENDING.set(row["n"])
    metrics.NOTIFICATIONS_PENDING_OLDEST.set(max(0.0, row["oldest"]))


SPEC = ServiceSpec(
    name="notify",
    metrics_port=9105,
    settings=NotifySettings,
    subscriptions=subscriptions,
    background=[sender],
    pending=Q.due_deliveries,
    gauges=gauges,
)

if __name__ == "__main__":
    run(SPEC)
