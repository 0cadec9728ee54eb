"""Apply consumed batches exactly once to a service's state.

For one batch, in one transaction:
1. parse every record; a record that is not a valid event of a known type is poison;
2. insert the event ids into ``inbox`` (primary key ``(consumer, event_id)``); ids already
   there were applied before (a redelivery) and are skipped;
3. hand the new events to their handlers in partition order, consecutive events of one
   handler as one run (``runs.handle``); handlers write state and queue events on the
   unit, or stage writes and defer per-key work to do once for the batch;
4. finish the staged and deferred work; write queued events and dead letters to
   ``outbox``; commit.
Only after the commit does the caller acknowledge the records, so a crash anywhere before it
redelivers the batch and step 2 makes the replay a no-op for what had been committed.

Nothing escapes: transient database errors are retried (the batch is not acknowledged until
it commits); any other exception re-runs the batch one event per transaction to find the
event that causes it, which goes to ``<topic>.dlq`` with the reason while the rest apply.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from pydantic import BaseModel

from schemas.envelope import CloudEvent
from schemas.registry import EVENT_TYPES, PoisonMessage, parse, type_of
from services.runtime import db, logs, sql
from services.runtime.clock import Clock
from services.runtime.metrics import (
    DLQ,
    DUPLICATES,
    EVENT_LAG,
    EVENTS_IN,
    INBOX_PRUNED,
    PROCESSING,
    TRANSIENT_RETRIES,
)
from services.runtime.runs import Handler, handle
from services.runtime.settings import Topics
from services.runtime.unit import Unit

log = logs.get(__name__)
Q = sql.load(__file__)

TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    # 57xxx: the server is shutting down, crashed, or still starting (a restart); the
    # batch is retried, never taken for poison
    asyncpg.exceptions.OperatorInterventionError,
)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None  # seconds since the epoch, as the broker stamped it
    event_type: str | None = None  # the relay's event-type header (outbox.py), if any


@dataclass
class _Parsed:
    record: Record
    event: CloudEvent
    data: BaseModel


class BatchConsumer:
    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        clock: Clock,
        handlers: Mapping[type[BaseModel], Handler],
        keyed: frozenset[type[BaseModel]] = frozenset(),
    ) -> None:
        """``handlers``: one per event model; ``keyed``: models whose handler is
        idempotent by the event's own key (``_claim``)."""
        self.service = service
        self.keyed = frozenset(type_of(model) for model in keyed)
        self.consumer = service
        self.pool = pool
        self.clock = clock
        # One object per handler, so a run's end is found by identity (a bound method
        # registered for several models is taken once per model, each a new object).
        same: dict[Handler, Handler] = {}
        self.handlers = {m: same.setdefault(h, h) for m, h in handlers.items()}
        self.types = frozenset(type_of(model) for model in handlers)
        # Skipped unparsed by their event-type header: the types the registry knows that
        # this service does not handle. Only those: a header naming a type nobody knows (or
        # garbage) says nothing about the record, which is parsed and, if it is not a valid
        # event, dead-lettered; trusting such a header would make the record vanish.
        self.not_ours = frozenset(EVENT_TYPES) - self.types
        self.source = f"/services/{service}"

    async def apply(self, records: list[Record]) -> None:
        started = time.perf_counter()
        parsed: list[_Parsed] = []
        poison: list[tuple[Record, str]] = []
        for record in records:
            if record.event_type in self.not_ours:
                continue  # a known type of another service, by its header: not parsed
            try:
                event, data = parse(record.value)
            except PoisonMessage as exc:
                poison.append((record, str(exc)))
                continue
            if event.type in self.types:  # other types on the same topic are not ours
                parsed.append(_Parsed(record, event, data))
        delay = 0.2
        while parsed or poison:  # nothing of ours: no transaction
            try:
                await self._apply(parsed, poison)
                break
            except TRANSIENT as exc:
                TRANSIENT_RETRIES.labels(self.service).inc()
                log.warning("transient error, retrying batch", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except Exception as exc:
                log.warning("batch failed, isolating the failing event", error=repr(exc))
                await self._apply_one_by_one(parsed, poison)
                break
        elapsed = time.perf_counter() - started
        topics = {r.topic for r in records}
        PROCESSING.labels(self.service, ",".join(sorted(topics))).observe(elapsed)
        now = time.time()
        lag = {topic: EVENT_LAG.labels(self.service, topic) for topic in topics}
        for item in parsed:
            if item.record.timestamp:
                lag[item.record.topic].observe(max(0.0, now - item.record.timestamp))

    async def _apply(self, parsed: list[_Parsed], poison: list[tuple[Record, str]]) -> None:
        async with self.pool.acquire() as conn:
            await self.clock.refresh(conn)
            async with conn.transaction():
                unit = Unit(conn, self.clock.now(), self.source)
                fresh = await self._claim(conn, parsed)
                handlers = self.handlers
                await handle(unit, [(handlers[type(i.data)], i.event, i.data) for i in fresh])
                await self._dead_letter(unit, poison)
                await unit.flush()
        self._count(fresh, parsed, poison)

    async def _claim(self, conn: asyncpg.Connection, parsed: list[_Parsed]) -> list[_Parsed]:
        """The batch's events to apply, in order: those whose ids the inbox had not seen
        (recorded now, in the batch's transaction), and every event of a ``keyed`` type,
        whose handler is idempotent by the event's own key and needs no inbox row. A
        repeat inside one batch counts once either way."""
        new = {item.event.id for item in parsed if item.event.type in self.keyed}
        ids = [item.event.id for item in parsed if item.event.type not in self.keyed]
        if ids:
            new.update(r["event_id"] for r in await conn.fetch(Q.claim_inbox, self.consumer, ids))
        fresh = []
        for item in parsed:  # keep order; a repeat inside one batch counts once
            if item.event.id in new:
                new.discard(item.event.id)
                fresh.append(item)
        return fresh

    async def _apply_one_by_one(
        self, parsed: list[_Parsed], poison: list[tuple[Record, str]]
    ) -> None:
        for item in parsed:
            delay = 0.2
            while True:
                try:
                    await self._apply([item], [])
                    break
                except TRANSIENT as exc:
                    TRANSIENT_RETRIES.labels(self.service).inc()
                    log.warning("transient error, retrying event", error=repr(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                except Exception as exc:
                    log.error(
                        "event failed; dead-lettered",
                        event_id=str(item.event.id),
                        event_type=item.event.type,
                        contract=item.event.subject,
                        error=repr(exc),
                    )
                    poison.append((item.record, f"{item.event.type} failed: {exc!r}"))
                    break
        if poison:
            await self._apply([], poison)

    async def _dead_letter(self, unit: Unit, poison: list[tuple[Record, str]]) -> None:
        for record, reason in poison:
            log.warning(
                "dead letter",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=reason,
            )
            await unit.conn.execute(
                Q.insert_dead_letter,
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                reason,
            )
            unit.dead_letter(Topics.dlq(record.topic), record.key, record.value, reason)

    def _count(
        self, fresh: list[_Parsed], parsed: list[_Parsed], poison: list[tuple[Record, str]]
    ) -> None:
        for (topic, type_), n in Counter((i.record.topic, i.event.type) for i in fresh).items():
            EVENTS_IN.labels(self.service, topic, type_).inc(n)
        fresh_ids = {id(item) for item in fresh}
        for item in parsed:
            if id(item) not in fresh_ids:
                DUPLICATES.labels(self.service, item.record.topic).inc()
        for record, _ in poison:
            DLQ.labels(self.service, record.topic).inc()


async def prune_inbox(
    pool: asyncpg.Pool, service: str, retention_days: int, chunk: int = 10_000
) -> int:
    """Delete the inbox's ids applied more than ``retention_days`` ago, ``chunk`` rows a
    transaction so no long lock or transaction holds up the consumer; returns how many.
    One instance of a service prunes at a time (the others skip the round)."""
    pruned = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            if not await db.try_schema_lock(conn, "inbox"):
                return pruned
            status = await conn.execute(Q.prune_inbox, retention_days, chunk)
        deleted = int(status.split()[-1])
        pruned += deleted
        INBOX_PRUNED.labels(service).inc(deleted)
        if deleted < chunk:
            return pruned


async def run_inbox_pruner(
    pool: asyncpg.Pool, service: str, retention_days: int, interval: float
) -> None:
    """Prune the inbox now and every ``interval`` seconds; a failed round is logged and
    tried again at the next."""
    while True:
        try:
            pruned = await prune_inbox(pool, service, retention_days)
            if pruned:
                log.info("inbox pruned", rows=pruned, retention_days=retention_days)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("inbox pruning failed; trying again later", error=repr(exc))
        await asyncio.sleep(interval)
