"""``GET /readyz``: whether this worker can do its work now. Each check asks the real
dependency, within ``BILLING_HEALTH_TIMEOUT`` (a frozen server fails the check rather than
holding the probe):

- ``database``: a query on the worker's own pool;
- ``kafka``: a metadata request to the cluster on the worker's consumer connection, with
  the partitions this member holds in its group (none is healthy: a spare instance);
- ``group``: this member is in its consumer group, with a coordinator and an assignment
  (not while it joins or the group rebalances).

200 with ``{"status": "ok", "checks": {...}}`` when every check passes; 503 with
``"status": "failing"`` and ``"failing": [names]`` otherwise, each check with its error.
A supervisor or load balancer reads the code; a person reads the body.

``GET /healthz`` is liveness only: the worker's event loop answers (200, ``{"status":
"ok"}``). A supervisor restarting what fails its liveness probe must not restart a worker
because its database or broker is away: it would come back to the same outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from services.runtime import errors, sql
from services.runtime.errors import Unavailable

Q = sql.load(__file__)
Probe = Callable[[], Awaitable[dict[str, Any]]]


def database(pool: asyncpg.Pool) -> Probe:
    async def probe() -> dict[str, Any]:
        async with pool.acquire() as conn:
            await conn.fetchval(Q.ping)
        return {}

    return probe


def kafka(consumer: AIOKafkaConsumer) -> Probe:
    """A metadata request for no topic to any broker the consumer knows, on its
    coordination connection: the fetch connection may be in a long poll
    (``BILLING_FETCH_MAX_WAIT_MS``), and a broker answers one connection's requests in
    order, so a probe there would wait behind it."""
    client = consumer._client

    async def probe() -> dict[str, Any]:
        failures = []
        for broker in client.cluster.brokers():
            try:
                answer = await client.send(
                    broker.nodeId, MetadataRequest([]), group=ConnectionGroup.COORDINATION
                )
            except KafkaError as exc:
                failures.append(f"broker {broker.nodeId} at {broker.host}:{broker.port}: {exc}")
                continue
            return {"brokers": len(answer.brokers), "partitions": len(consumer.assignment())}
        raise Unavailable("; ".join(failures) or "no broker known")

    return probe


def group(consumer: AIOKafkaConsumer) -> Probe:
    """The member's standing in its group, as aiokafka's coordinator knows it (no request:
    the coordinator's heartbeat asks the broker every ``BILLING_HEARTBEAT_INTERVAL``)."""

    async def probe() -> dict[str, Any]:
        coordinator = consumer._coordinator
        subscription = consumer._subscription.subscription
        if coordinator is None or subscription is None:
            raise Unavailable("the consumer has not joined its group yet")
        if coordinator.coordinator_id is None:
            raise Unavailable(f"no coordinator known for group {coordinator.group_id}")
        if coordinator.need_rejoin(subscription):
            raise Unavailable(f"joining group {coordinator.group_id} (a rebalance)")
        return {
            "group": coordinator.group_id,
            "generation": coordinator.generation,
            "partitions": len(subscription.assignment.tps),
        }

    return probe


async def alive(_: web.Request) -> web.Response:
    """Liveness: answering at all is the whole check."""
    return web.json_response({"status": "ok"})


class Health:
    def __init__(self, probes: dict[str, Probe], timeout: float) -> None:
        self.probes = probes
        self.timeout = timeout

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """Every probe at once; (all passed, the body)."""
        names = list(self.probes)
        results = await asyncio.gather(*(self._one(self.probes[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        failing = [n for n in names if not checks[n]["ok"]]
        body: dict[str, Any] = {"status": "failing" if failing else "ok", "checks": checks}
        if failing:
            body["failing"] = failing
        return not failing, body

    async def _one(self, probe: Probe) -> dict[str, Any]:
        started = time.monotonic()
        try:
            found = await asyncio.wait_for(probe(), self.timeout)
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {self.timeout:g} s"}
        except Exception as exc:
            return {"ok": False, "error": errors.classify(exc)[1]}
        return {"ok": True, "ms": round(1000 * (time.monotonic() - started), 1), **found}

    async def handle(self, _: web.Request) -> web.Response:
        ok, body = await self.check()
        return web.json_response(body, status=200 if ok else 503)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/readyz", self.handle)
