"""Drift between the access provisioning wants and what each gear reports it applied.

``GET /drift`` on the metrics port lists the contracts a gear is behind on; the gauges
``billing_access_drift{gear}`` (how many) and ``billing_access_drift_oldest_seconds{gear}``
(how long the oldest has waited) are refreshed every few seconds for alerting.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from prometheus_client import Gauge

from schemas import events as ev
from services.provisioning.service import Q
from services.runtime import logs
from services.runtime.metrics import RECONNECT
from services.runtime.runs import Run
from services.runtime.unit import Unit
from services.runtime.worker import Runtime

log = logs.get(__name__)

DRIFT = Gauge(
    "billing_access_drift", "Contracts whose desired access a gear has not applied", ["gear"]
)
DRIFT_AGE = Gauge(
    "billing_access_drift_oldest_seconds", "Age of the oldest unapplied access change", ["gear"]
)


async def on_gear_applied(unit: Unit, run: Run[ev.GearApplied]) -> None:
    """Record what each gear applied; the first report of a restore's version ends its
    reconnect: from the payment's arrival to the gear's ``applied_at``. (A batch retried
    after a transient error observes its restores again: rare, and only a sample more.)"""
    applied_at: dict[str, datetime] = {}
    for data in run:
        await unit.conn.execute(
            Q.record_applied, data.gear, data.contract, data.version, data.state, data.applied_at
        )
        applied_at[data.contract] = min(
            data.applied_at, applied_at.get(data.contract, data.applied_at)
        )
    ended = await unit.conn.fetch(
        Q.restores_applied, [d.contract for d in run], [d.version for d in run]
    )
    for row in ended:
        took = (applied_at[row["contract"]] - row["paid_at"]).total_seconds()
        RECONNECT.observe(max(0.0, took))


async def drift_list(rt: Runtime, request: web.Request) -> web.Response:
    try:
        limit = min(int(request.query.get("limit", "500")), 5000)
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number") from None
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(Q.drift, limit)
    return web.json_response(
        [
            {
                "gear": r["gear"],
                "contract": r["contract"],
                "desired": {"state": r["desired_state"], "version": r["desired_version"]},
                "applied": (
                    {"state": r["applied_state"], "version": r["applied_version"]}
                    if r["applied_version"] is not None
                    else None
                ),
                "since": r["effective_at"].isoformat(),
            }
            for r in rows
        ]
    )


async def refresh_gauges(rt: Runtime, interval: float = 5.0) -> None:
    while True:
        try:
            async with rt.db.acquire() as conn:
                await rt.clock.refresh(conn)
                gears = [r["gear"] for r in await conn.fetch(Q.gears)]
                # a scan of every contract's access: not while no gear has reported yet
                rows = await conn.fetch(Q.drift_counts, rt.clock.now()) if gears else []
                counts = {r["gear"]: r for r in rows}
            for gear in gears:
                row = counts.get(gear)
                DRIFT.labels(gear).set(row["behind"] if row else 0)
                DRIFT_AGE.labels(gear).set(row["oldest_seconds"] if row else 0)
        except Exception as exc:  # the gauges must not take the worker down
            log.error("drift refresh failed", error=repr(exc))
        await asyncio.sleep(interval)
