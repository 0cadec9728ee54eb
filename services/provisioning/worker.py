"""Provisioning worker: access state per contract, published on ``network.access``; the
notice page; the access snapshot (``GET /access`` on the metrics port)."""

from __future__ import annotations

from aiohttp import web

from services.provisioning import drift
from services.provisioning.service import Provisioning
from services.provisioning.settings import ProvisioningSettings
from services.provisioning.web import check_settings, serve_notice, snapshot
from services.runtime.consumer import Handler
from services.runtime.worker import Runtime, ServiceSpec, run


def subscriptions(rt: Runtime) -> dict[str, dict[str, Handler]]:
    p = Provisioning(rt.topics)
    return {
        rt.topics.contracts: {"contract.upserted.v1": p.on_contract},
        rt.topics.dunning: {
            "notice.requested.v1": p.on_request,
            "suspend.requested.v1": p.on_request,
            "restrict.requested.v1": p.on_request,
            "restore.requested.v1": p.on_request,
        },
        rt.topics.network_applied: {"gear.applied.v1": drift.on_gear_applied},
    }


def routes(rt: Runtime, app: web.Application) -> None:
    async def access(request: web.Request) -> web.Response:
        return await snapshot(rt, request)

    async def drift_view(request: web.Request) -> web.Response:
        return await drift.drift_list(rt, request)

    app.router.add_get("/access", access)
    app.router.add_get("/drift", drift_view)


async def notice_server(rt: Runtime) -> web.AppRunner:
    return await serve_notice(rt, Provisioning(rt.topics))


SPEC = ServiceSpec(
    name="provisioning",
    metrics_port=9104,
    settings=ProvisioningSettings,
    subscriptions=subscriptions,
    routes=routes,
    extra_servers=[notice_server],
    background=[drift.refresh_gauges],
    startup_checks=[check_settings],
)

if __name__ == "__main__":
    run(SPEC)
