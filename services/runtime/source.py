"""Read a service's topics in batches straight from aiokafka and hand them to be applied.

Faust's agents deliver one message at a time: its consumer wraps each record in a Message,
its conductor in an Event for each channel, its stream queues and yields it, and each is
acknowledged on its own. Under load that machinery cost more CPU than parsing, pairing and
storing together (docs/performance.md#finding-8). Here ``getmany`` hands over what the
fetches brought, up to ``batch_size`` records, as one list.

Delivery stays at-least-once and the inbox makes it exactly-once in effect:
- offsets are committed only after the batch's transaction has committed (``apply``
  returned), every ``commit_interval`` seconds and whenever partitions are revoked;
- a rebalance waits for the batch in hand (the listener takes the same lock), so the next
  owner of a partition starts after the last committed batch, or replays it into the inbox.

Assignment is range-based, so partition *n* of every topic of the service lands on the same
instance: every topic is keyed by contract, and one contract's events meet in one place.

Bulk topics last. A billing run puts a million ``invoice.issued`` on one topic within a
minute; a worker reading that topic and others (payments, dunning) took a payment that came
meanwhile only after the invoices the same fetch brought ahead of it, batch after batch,
seconds late (docs/performance.md#finding-28). Each batch takes the records of the other topics
first (up to four fifths of a batch, so a bulk topic is never starved), then fills up from
all. Order is kept within a partition, as Kafka gives it; between topics there was no order
to keep, and the services hold any order of arrival (a payment before its invoice is
credit that pays the invoice when it comes; a settlement before the issue stays settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from services.runtime import logs
from services.runtime.consumer import Record
from services.runtime.kafka_client import client_options
from services.runtime.metrics import CONSUMER_LAG, PARTITIONS
from services.runtime.outbox import EVENT_TYPE_HEADER
from services.runtime.settings import Settings

log = logs.get(__name__)

Apply = Callable[[list[Record]], Awaitable[None]]
Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def _event_type(headers: Sequence[tuple[str, bytes]]) -> str | None:
    for name, value in headers:
        if name == EVENT_TYPE_HEADER:
            # not UTF-8: no type anybody knows, so the record is parsed (consumer.py)
            return None if value is None else value.decode(errors="replace")
    return None


def group_id(settings: Settings, service: str) -> str:
    return f"{settings.group_prefix}-{service}"


class BatchSource:
    def __init__(
        self,
        service: str,
        topics: list[str],
        settings: Settings,
        apply: Apply,
        bulk: frozenset[str] = frozenset(),
    ) -> None:
        self.service = service
        self.topics = topics
        self.bulk = bulk & set(topics)  # topics read after the others (see above)
        self.settings = settings
        self.apply = apply
        self.lock = asyncio.Lock()  # held while a batch is applied and while committing
        self.pending: dict[TopicPartition, int] = {}  # applied, not yet committed
        self.committed: dict[TopicPartition, int] = {}  # what this member last committed
        self.committed_at = time.monotonic()
        self.started = False
        self.consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=group_id(settings, service),
            client_id=group_id(settings, service),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_poll_records=settings.batch_size,
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            rebalance_timeout_ms=int(settings.rebalance_timeout * 1000),
            partition_assignment_strategy=(RangePartitionAssignor,),
        )

    async def start(self) -> None:
        """Join the group; returns once this member has its partitions."""
        self.consumer.subscribe(self.topics, listener=_Listener(self))
        await self.consumer.start()
        self.started = True
        log.info("consuming", topics=self.topics, group=group_id(self.settings, self.service))

    async def run(self) -> None:
        """Apply batches until cancelled or ``apply`` raises (then the worker stops, and
        what that batch held comes again after the restart)."""
        if not self.started:
            await self.start()
        try:
            while True:
                fetched = await self._next()
                async with self.lock:
                    # a rebalance may have taken partitions since these were fetched
                    owned = self.consumer.assignment()
                    fetched = {tp: ms for tp, ms in fetched.items() if tp in owned and ms}
                    if fetched:
                        await self._apply(fetched)
                    if self.pending and (
                        time.monotonic() - self.committed_at >= self.settings.commit_interval
                    ):
                        await self._commit()
        finally:
            async with self.lock:
                await self._commit()
            await self.consumer.stop()

    async def _next(self) -> Fetched:
        """The next batch: what is buffered of the topics that are not bulk, then the rest
        up to ``batch_size`` (waiting up to a second for anything when nothing is in)."""
        size = self.settings.batch_size
        first: Fetched = {}
        if self.bulk:
            others = [tp for tp in self.consumer.assignment() if tp.topic not in self.bulk]
            if others:
                first = await self.consumer.getmany(
                    *others, timeout_ms=0, max_records=max(1, size - size // 5)
                )
                first = {tp: ms for tp, ms in first.items() if ms}
        taken = sum(len(ms) for ms in first.values())
        if taken >= size:
            return first
        rest = await self.consumer.getmany(
            timeout_ms=0 if taken else 1000, max_records=size - taken
        )
        for tp, ms in rest.items():
            first.setdefault(tp, []).extend(ms)  # later offsets of the same partition
        return first

    async def _apply(self, fetched: Fetched) -> None:
        records = [
            Record(
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                key=m.key,
                value=m.value,
                timestamp=m.timestamp / 1000 if m.timestamp is not None else None,
                event_type=_event_type(m.headers),
            )
            for messages in fetched.values()
            for m in messages
        ]
        await self.apply(records)  # returns once committed in PostgreSQL
        for tp, messages in fetched.items():
            self.pending[tp] = messages[-1].offset + 1

    async def export_lag(self, interval: float) -> None:
        """``billing_consumer_lag`` of each partition held, every ``interval`` seconds: the
        partition's end offset (asked of the broker, so a consumer stuck on a batch still
        shows its lag growing) less the offset the group committed (this member's last
        commit; before it has made one, what the group had, asked once)."""
        while True:
            try:
                await self._export_lag_once()
            except KafkaError as exc:
                log.info("consumer lag unknown until the next round", error=repr(exc))
            await asyncio.sleep(interval)

    async def _export_lag_once(self) -> None:
        held = self.consumer.assignment()
        if not held:
            return
        ends = await self.consumer.end_offsets(list(held))
        for tp, end in ends.items():
            done = self.committed.get(tp)
            if done is None:
                done = await self.consumer.committed(tp)
                if done is None:  # the group never committed: it starts from the beginning
                    done = (await self.consumer.beginning_offsets([tp]))[tp]
            if tp not in self.consumer.assignment():  # revoked meanwhile
                continue
            self.committed.setdefault(tp, done)
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, end - done))

    def _forget_lag(self, partitions: list[TopicPartition]) -> None:
        """A partition handed to another member is its to report: two series for one
        partition would count it twice until this one went stale."""
        for tp in partitions:
            self.committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.service, tp.topic, str(tp.partition))

    async def _commit(self) -> None:
        """Commit what has been applied. A failed commit is not lost work: those records come
        again to whoever owns the partition next, and the inbox skips them."""
        if not self.pending:
            return
        offsets, self.pending = self.pending, {}
        self.committed_at = time.monotonic()
        try:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)
        except KafkaError as exc:  # CommitFailedError among them
            log.warning(
                "offset commit failed; applied records will be skipped on redelivery",
                error=repr(exc),
            )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: BatchSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.source.lock:  # the batch in hand finishes first
            await self.source._commit()
            self.source._forget_lag(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        held = Counter(tp.topic for tp in assigned)
        for topic in self.source.topics:
            PARTITIONS.labels(self.source.service, topic).set(held[topic])
        log.info(
            "partitions assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )
