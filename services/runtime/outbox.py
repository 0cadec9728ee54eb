"""The outbox relay: publishes what services committed to their ``outbox`` table.

Order of steps, and why it is safe:
1. Take a transaction-scoped advisory lock named after the schema. Only one relay of a
   service publishes at a time, so rows leave in id order; other instances skip the round.
2. Read the oldest rows (ids grow in commit order per key, because one key is only ever
   written by the single consumer that owns its partition).
3. Hand them all to the producer, then wait for every acknowledgement (acks=all). aiokafka
   keeps per-partition order for what it is given in order.
4. Delete the rows and commit. A crash between 3 and 4 publishes those rows again on the
   next round: at-least-once. Consumers' inboxes drop the repeats by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.runtime import logs
from services.runtime.metrics import EVENTS_OUT, OUTBOX_BACKLOG

log = logs.get(__name__)


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    # No idempotent producer: the embedded broker lacks it (DESIGN section 8); the inbox makes
    # redelivery harmless, so the guarantee is the same on real Kafka.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )


class OutboxRelay:
    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        batch: int = 1000,
        poll_interval: float = 0.5,
    ) -> None:
        self.service = service
        self.pool = pool
        self.producer = producer
        self.batch = batch
        self.poll_interval = poll_interval
        self.wakeup = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def publish_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox'))"
            )
            if not locked:
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, value, headers, event_type FROM outbox"
                " ORDER BY id LIMIT $1",
                self.batch,
            )
            if not rows:
                OUTBOX_BACKLOG.labels(self.service).set(0)
                return 0
            futures: list[asyncio.Future[Any]] = []
            for row in rows:
                headers = [(k, v.encode()) for k, v in row["headers"]]
                fut = await self.producer.send(
                    row["topic"], value=row["value"], key=row["key"], headers=headers
                )
                futures.append(fut)
            await asyncio.gather(*futures)
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
            for row in rows:
                EVENTS_OUT.labels(self.service, row["topic"], row["event_type"]).inc()
            backlog = await conn.fetchval("SELECT count(*) FROM outbox")
            OUTBOX_BACKLOG.labels(self.service).set(max(0, backlog - len(rows)))
            return len(rows)

    async def run(self, dsn: str) -> None:
        """Publish forever: woken by NOTIFY from any process that commits outbox rows, and
        by a poll as a safety net."""
        self._listener = await asyncpg.connect(dsn)
        await self._listener.add_listener(f"{self.service}_outbox", self._notified)
        try:
            while True:
                try:
                    while await self.publish_once() >= self.batch:
                        pass
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    log.warning("outbox relay round failed; retrying", error=repr(exc))
                    await asyncio.sleep(1.0)
                except Exception as exc:
                    log.error("outbox relay round failed; retrying", error=repr(exc))
                    await asyncio.sleep(1.0)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.poll_interval)
                self.wakeup.clear()
        finally:
            with contextlib.suppress(Exception):
                await self._listener.close()

    def _notified(self, *_: object) -> None:
        self.wakeup.set()
