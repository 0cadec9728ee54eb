"""Traffic worker: gear's counter reports (``traffic.counters.v1``) into traffic per
contract and address (5-minute buckets, hours, days); closed hours published for the zone
(``traffic.hour.v1``); retention on a timer."""

from __future__ import annotations

from pydantic import BaseModel

from schemas import events as ev
from services.runtime.runs import Handler
from services.runtime.timers import TimerHandler
from services.runtime.worker import Runtime, ServiceSpec, run
from services.traffic.service import Traffic
from services.traffic.settings import TrafficSettings


def subscriptions(rt: Runtime[TrafficSettings]) -> dict[type[BaseModel], Handler]:
    t = Traffic(rt.settings)
    return {ev.TrafficCounters: t.on_counters, ev.ContractUpserted: t.on_contract}


def timer(rt: Runtime[TrafficSettings]) -> TimerHandler:
    return Traffic(rt.settings).on_timer


SPEC = ServiceSpec(
    name="traffic",
    metrics_port=9107,
    settings=TrafficSettings,
    subscriptions=subscriptions,
    timer=timer,
)

if __name__ == "__main__":
    run(SPEC)
