"""Notify worker: e-mails dunning messages to the right contacts, once each."""

from __future__ import annotations

from services.notify.service import KINDS, Notify, Q, Sender
from services.notify.settings import NotifySettings
from services.runtime.consumer import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[str, dict[str, Handler]]:
    n = Notify(rt.settings, rt.topics)
    return {
        rt.topics.contracts: {"contract.upserted.v1": n.on_contract},
        rt.topics.dunning: dict.fromkeys(KINDS, n.on_request),
    }


async def sender(rt: Runtime) -> None:
    await Sender(rt.settings, rt.topics, rt.db, rt.clock).run(rt.settings.timer_poll_interval)


SPEC = ServiceSpec(
    name="notify",
    metrics_port=9105,
    settings=NotifySettings,
    subscriptions=subscriptions,
    background=[sender],
    pending=Q.due_deliveries,
)

if __name__ == "__main__":
    run(SPEC)
