"""The gauges each worker counts from its own tables on a timer (issue 32 item 1): contracts
by access state (provisioning) and by dunning stage (dunning), deliveries waiting
(notify), and what every worker has: the outbox's oldest row and dead letters by topic.
Each service's refresh (its ``SPEC.gauges``, as the worker's timer runs it) against
PostgreSQL with rows of its own; the values read back from the registry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from services.dunning import worker as dunning
from services.notify import worker as notify
from services.provisioning import worker as provisioning
from services.provisioning.service import Provisioning
from services.runtime import db, metrics
from services.runtime.clock import make_clock
from services.runtime.settings import Settings, Topics
from services.runtime.worker import Runtime
from tests.integration.test_provisioning_drift import add_contracts, in_unit


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_each_service_counts_its_own_tables(database_url: str) -> None:
    asyncio.run(_gauges(database_url))


async def _gauges(url: str) -> None:
    settings = Settings(database_url=url, environment="development")

    def rt(service: str) -> Runtime:
        return Runtime(service, settings, Topics(), make_clock(settings))

    for schema in ("provisioning", "dunning", "notify"):
        await db.migrate(url, schema)
    conn = await db.connect(url, "provisioning")
    try:
        p = Provisioning()
        await add_contracts(conn, p, {"3001": "100.64.2.1", "3002": "100.64.2.2"})
        await add_contracts(conn, p, {"3003": "100.64.2.3"})
        await in_unit(conn, lambda u: p.change(u, "3001", "suspend"))
        await provisioning.SPEC.gauges(rt("provisioning"), conn)  # type: ignore[misc]
        by_access = "billing_contracts_by_access"
        assert value(by_access, state="active") == 2
        assert value(by_access, state="suspended") == 1
        assert value(by_access, state="restricted") == 0  # nobody, still a series

        # every worker: the outbox's oldest row (the suspension's network.access, unsent)
        # and its dead letters by topic
        await conn.execute(
            'INSERT INTO dead_letters (topic, partition, "offset", key, value, reason)'
            " VALUES ('billing.dunning', 0, 7, NULL, 'x', 'not JSON'),"
            " ('billing.dunning', 1, 9, NULL, 'y', 'not JSON'),"
            " ('billing.contracts', 0, 3, NULL, 'z', 'unknown type')"
        )
        await conn.execute(
            "UPDATE outbox SET created_at = now() - interval '90 seconds'"
            " WHERE id = (SELECT min(id) FROM outbox)"
        )
        await metrics.runtime_gauges(rt("provisioning"), conn)
        oldest = value("billing_outbox_oldest_seconds", service="provisioning")
        assert oldest is not None and 90 <= oldest < 150
        letters = "billing_dead_letters"
        assert value(letters, service="provisioning", topic="billing.dunning") == 2
        assert value(letters, service="provisioning", topic="billing.contracts") == 1
        await conn.execute("DELETE FROM outbox")
        await metrics.runtime_gauges(rt("provisioning"), conn)
        assert value("billing_outbox_oldest_seconds", service="provisioning") == 0

        await conn.execute("SET search_path TO dunning")
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO state (contract, stage, updated_at) VALUES"
            " ('3001', 'suspended', $1), ('3002', 'notice', $1), ('3004', 'notice', $1)",
            now,
        )
        await dunning.SPEC.gauges(rt("dunning"), conn)  # type: ignore[misc]
        by_stage = "billing_contracts_by_dunning_stage"
        assert value(by_stage, stage="notice") == 2 and value(by_stage, stage="suspended") == 1
        assert value(by_stage, stage="active") == 0

        await conn.execute("SET search_path TO notify")
        for n, (status, age) in enumerate([("pending", 600), ("pending", 60), ("sent", 9000)]):
            await conn.execute(
                "INSERT INTO deliveries (contract, request_id, kind, channel, recipient,"
                " language, subject, body, status, next_attempt_at, created_at)"
                " VALUES ('3001', $1, 'reminder', 'email', 'a@example.org', 'cs', 's', 'b',"
                " $2, $3, $3)",
                f"r{n}", status, now - timedelta(seconds=age),
            )  # fmt: skip
        await notify.SPEC.gauges(rt("notify"), conn)  # type: ignore[misc]
        assert value("billing_notifications_pending") == 2
        waited = value("billing_notifications_pending_oldest_seconds")
        assert waited is not None and 600 <= waited < 660
    finally:
        await conn.close()
