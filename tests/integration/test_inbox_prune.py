"""The inbox forgets applied event ids after the retention, and only those: a redelivery
of a recent event is still skipped, one of a pruned event would not be."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from services.runtime import db
from services.runtime.consumer import prune_inbox


def test_ids_older_than_the_retention_are_pruned_in_chunks(database_url: str) -> None:
    asyncio.run(_prune(database_url))


async def _prune(url: str) -> None:
    await db.migrate(url, "notify")
    pool = await db.create_pool(url, "notify")
    old = [uuid.uuid4() for _ in range(2_500)]
    kept = [uuid.uuid4() for _ in range(10)]
    try:
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE inbox")
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at)"
                " SELECT 'notify', unnest($1::uuid[]), now() - interval '31 days'",
                old,
            )
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at)"
                " SELECT 'notify', unnest($1::uuid[]), now() - interval '29 days 23 hours'",
                kept,
            )
        before = REGISTRY.get_sample_value("billing_inbox_pruned_total", {"service": "notify"})
        assert await prune_inbox(pool, "notify", retention_days=30, chunk=1_000) == 2_500
        after = REGISTRY.get_sample_value("billing_inbox_pruned_total", {"service": "notify"})
        assert (after or 0) - (before or 0) == 2_500
        async with pool.acquire() as conn:
            left = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
        assert left == set(kept)
        assert await prune_inbox(pool, "notify", retention_days=30, chunk=1_000) == 0
        # another instance pruning at the time: this one skips the round
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.inbox'))"
            )
            assert await prune_inbox(pool, "notify", retention_days=1, chunk=1_000) == 0
        assert await prune_inbox(pool, "notify", retention_days=1, chunk=1_000) == 10
    finally:
        await pool.close()
