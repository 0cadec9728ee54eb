"""Provisioning worker: access state per contract, published on ``network.access``; the
notice page; the access snapshot (``GET /access`` on the metrics port)."""

from __future__ import annotations

from typing import get_args

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from schemas import events as ev
from services.provisioning import domain, drift
from services.provisioning.service import REQUESTS, Provisioning, Q
from services.provisioning.settings import ProvisioningSettings
from services.provisioning.web import check_settings, serve_notice, snapshot
from services.runtime import metrics
from services.runtime.runs import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[type[BaseModel], Handler]:
    p = Provisioning()
    return {
        ev.ContractUpserted: p.on_contract,
        **dict.fromkeys(REQUESTS, p.on_request),
        ev.GearApplied: drift.on_gear_applied,
    }


def routes(rt: Runtime, app: web.Application) -> None:
    async def access(request: web.Request) -> web.Response:
        return await snapshot(rt, request)

    async def drift_view(request: web.Request) -> web.Response:
        return await drift.drift_list(rt, request)

    app.router.add_get("/access", access)
    app.router.add_get("/drift", drift_view)


async def notice_server(rt: Runtime) -> web.AppRunner:
    return await serve_notice(rt, Provisioning())


async def gauges(rt: Runtime, conn: asyncpg.Connection) -> None:
    """Contracts per access state: how many customers are suspended, restricted..."""
    states = get_args(domain.AccessState)
    await metrics.set_counts(conn, Q.access_counts, metrics.CONTRACTS_BY_ACCESS, states)


SPEC = ServiceSpec(
    name="provisioning",
    metrics_port=9104,
    settings=ProvisioningSettings,
    subscriptions=subscriptions,
    routes=routes,
    extra_servers=[notice_server],
    background=[drift.refresh_gauges],
    startup_checks=[check_settings],
    gauges=gauges,
)

if __name__ == "__main__":
    run(SPEC)
