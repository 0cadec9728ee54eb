"""Has the whole system finished reacting? Used by `billing clock advance` and the tests.

Quiet means, twice in a row with nothing published in between: every consumer group has
committed up to the end of every partition it reads, no service has outbox rows waiting,
no durable timer is due, and no service has other work of its own due (each worker's
``SPEC.pending``: notify's deliveries). A consumer commits its offsets only after its
transaction, so a committed offset implies the effects (and the outbox rows they queued)
are already visible. What each service reads and has pending, its ``SPEC`` says: no
worker runs this module, so the runtime need not know the services.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from services.runtime import db, sql
from services.runtime.clock import SystemClock, advance_clock, read_clock
from services.runtime.kafka_client import client_options, partitions
from services.runtime.settings import Settings, Topics, get_topics
from services.runtime.source import group_id
from services.runtime.worker import Runtime, ServiceSpec, topics_of
from services.workers import SERVICES

Q = sql.load(__file__)


def specs() -> dict[str, ServiceSpec]:
    """Each worker's ``SPEC``, by service."""
    return {s: importlib.import_module(f"services.{s}.worker").SPEC for s in SERVICES}


def subscribed_topics(settings: Settings, topics: Topics) -> dict[str, list[str]]:
    out = {}
    for service, spec in specs().items():
        rt = Runtime(service, settings.for_service(spec.settings), topics, SystemClock())
        out[service] = topics_of(spec.subscriptions(rt), topics)
    return out


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's end: its high watermark as a fetch response gives it, at least the
    end offset the broker lists. Kafka lists the high watermark; the embedded broker lists
    the first offset of a partition's last record batch + 1, so a reader or a consumer part
    way through that batch looked done (docs/performance.md#finding-22). One fetch a
    leader, from the listed ends, for at most a byte: the answer carries the watermark."""
    listed = await consumer.end_offsets(partitions)
    client = consumer._client
    wanted: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
    for tp, end in listed.items():
        leader = client.cluster.leader_for_partition(tp)
        if leader is not None and leader >= 0:
            wanted.setdefault(leader, {}).setdefault(tp.topic, []).append((tp.partition, end, 1))
    ends = dict(listed)
    for leader, topics in wanted.items():
        response = await client.send(
            leader,
            FetchRequest(
                max_wait_time=1,  # 0: the embedded broker answers with no topics at all
                min_bytes=0,
                max_bytes=1,
                isolation_level=0,
                topics=list(topics.items()),
            ),
        )
        for topic, partitions_ in response.topics:
            for partition, error_code, high_watermark, *_ in partitions_:
                tp = TopicPartition(topic, partition)
                if error_code == 0 and tp in ends:
                    ends[tp] = max(ends[tp], high_watermark)
    return ends


@dataclass
class Snapshot:
    lag: int
    outbox: int
    timers_due: int
    pending: int  # the services' own work due (SPEC.pending: notify's deliveries)
    end_offsets: int

    @property
    def idle(self) -> bool:
        return self.lag == 0 and self.outbox == 0 and self.timers_due == 0 and self.pending == 0


class Quiescence:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.subscriptions = subscribed_topics(settings, topics)
        self.pending = {s: spec.pending for s, spec in specs().items() if spec.pending}
        self.groups: dict[str, AIOKafkaConsumer] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> Quiescence:
        kafka = client_options(self.settings)
        # One group-bound consumer per service, never subscribed: it only reads the group's
        # committed offsets (OffsetFetch through the coordinator, as a member would).
        for service in self.subscriptions:
            group = AIOKafkaConsumer(
                **kafka,
                group_id=group_id(self.settings, service),
                enable_auto_commit=False,
            )
            await group.start()
            self.groups[service] = group
        self.consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
        await self.consumer.start()
        names = sorted({t for ts in self.subscriptions.values() for t in ts})
        self.partitions = await partitions(self.consumer, names)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.consumer:
            await self.consumer.stop()
        for group in self.groups.values():
            await group.stop()

    async def snapshot(self, conn: asyncpg.Connection) -> Snapshot:
        assert self.consumer
        ends = await end_offsets(self.consumer, self.partitions)
        lag = 0
        for service, names in self.subscriptions.items():
            group = self.groups[service]
            for tp, end in ends.items():
                if tp.topic in names and end > 0:
                    done = await group.committed(tp) or 0
                    lag += max(0, end - done)
        now = await read_clock(conn)
        outbox = timers = pending = 0
        async with conn.transaction():  # each service's schema in turn, for its counts
            for service in SERVICES:
                await conn.execute(Q.use_schema_in_transaction, service)
                outbox += await conn.fetchval(Q.outbox_rows)
                timers += await conn.fetchval(Q.due_timer_count, now)
                if service in self.pending:
                    pending += await conn.fetchval(self.pending[service], now)
        return Snapshot(lag, outbox, timers, pending, sum(ends.values()))

    async def wait(
        self, conn: asyncpg.Connection, timeout: float = 60.0, interval: float = 0.1
    ) -> float:
        """Wait until quiet; return the seconds it took."""
        started = time.monotonic()
        previous: Snapshot | None = None
        while True:
            snap = await self.snapshot(conn)
            if (
                snap.idle
                and previous is not None
                and previous.idle
                and (previous.end_offsets == snap.end_offsets)
            ):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"system not quiet after {timeout}s: {snap}")
            previous = snap
            await asyncio.sleep(interval)


async def advance(
    settings: Settings, by: timedelta, step: timedelta = timedelta(days=1), on_step: Any = None
) -> datetime:
    """Move the shared clock ahead in steps (a day by default), waiting after each until the
    system is quiet, as if that time had really passed with the workers running."""
    conn = await db.connect(settings.database_url)
    try:
        async with Quiescence(settings, get_topics()) as q:
            await q.wait(conn)
            remaining = by
            now = await read_clock(conn)
            while remaining > timedelta(0):
                delta = min(step, remaining)
                now = await advance_clock(conn, delta)
                remaining -= delta
                await q.wait(conn)
                if on_step is not None:
                    await on_step(now)
            return now
    finally:
        await conn.close()
