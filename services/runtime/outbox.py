"""The outbox: the events a unit of work queues (``Outbox``: each event's envelope, its
type and topic from its model, and how the rows are written: one INSERT, or COPY with long
runs packed), and the relay that publishes what services committed to their ``outbox``
table.

The relay's order of steps, and why it is safe:
1. Take a transaction-scoped advisory lock named after the schema. Only one relay of a
   service publishes at a time, so rows leave in id order; other instances skip the round.
2. Delete the oldest rows, returning them (ids grow in commit order per key, because one
   key is only ever written by the single consumer that owns its partition). A packed row
   (``records`` set) holds that many events in emit order; it is taken and published whole.
3. Hand them all to the producer as record batches, one per partition at a time, then
   wait for every acknowledgement (acks=all). aiokafka keeps one batch per partition in
   flight, so per-partition order is the rows' id order.
4. Commit. Until then the deletion is not seen by anyone: a failed send rolls it back, and
   a crash between 3 and 4 publishes those rows again on the next round: at-least-once.
   Consumers' inboxes drop the repeats by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import struct
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import BaseModel, TypeAdapter

from schemas.envelope import CONTENT_TYPE, event_id_text
from schemas.registry import ROUTES
from services.runtime import db, logs, sql
from services.runtime.db import Jsonb
from services.runtime.metrics import EVENTS_OUT, OUTBOX_BACKLOG
from services.runtime.settings import Topics, get_topics

if TYPE_CHECKING:  # loaded by make_producer: a command that only writes rows goes without
    from aiokafka import AIOKafkaProducer

    from services.runtime.settings import Settings

log = logs.get(__name__)
Q = sql.load(__file__)


# Every event's record names its type in this header, beside the CloudEvent in the value: a
# consumer skips the types it does not handle on a topic it reads without parsing them
# (services/runtime/consumer.py). Records without it (another producer's) are parsed.
EVENT_TYPE_HEADER = "event-type"
DEAD_LETTER = "dead-letter"  # the outbox type of a dead letter (``Outbox.dead_letter``)


@functools.lru_cache(maxsize=256)
def _headers(text: str, event_type: str | None) -> list[tuple[str, bytes]]:
    """Record headers from the row's JSON, and its event type; almost every row has the
    same, parsed once."""
    headers = [(k, v.encode()) for k, v in json.loads(text)]
    if event_type and event_type != DEAD_LETTER:
        headers.append((EVENT_TYPE_HEADER, event_type.encode()))
    return headers


# --- writing: the events a unit of work queues ---------------------------------------------

HEADERS = Jsonb(json.dumps([["content-type", CONTENT_TYPE]]))
COPY_AT_LEAST = 1000  # events a write puts in by COPY from, not by one INSERT of arrays
# In a write that large, a run of consecutive events of one topic, type and headers of at
# least PACK_AT_LEAST goes as packed rows of at most PACK_MAX (migration 002_outbox_packed)
PACK_AT_LEAST = 100
PACK_MAX = 1000
# an outbox row as queued: topic, key, value, headers, event type; and as written, with
# the number of events it packs (None: one)
OutboxRow = tuple[str, bytes | None, bytes, Jsonb, str]
PackedRow = tuple[str, bytes | None, bytes, Jsonb, str, int | None]
_STR = TypeAdapter(str)
_TIME = TypeAdapter(datetime)


class Outbox(list[OutboxRow]):
    """The events one unit of work queues, in emit order, as outbox rows; ``write`` puts
    them in the ``outbox`` table in the unit's transaction. A list, so a caller can undo
    what a failed step queued (``del outbox[n:]``, the timer loop does).

    An event names only its key and data: its type and topic are the model's
    (``schemas.registry.ROUTES``; the topic's name from ``topics``, the settings').

    The envelope is written around the data's JSON directly: byte for byte what
    ``envelope(...).model_dump_json()`` gives (a test holds them equal), without building
    and validating an envelope model per event (a third of the cost)."""

    def __init__(self, source: str, topics: Topics | None = None) -> None:
        super().__init__()
        self.source = source
        self.topics = topics or get_topics()
        self._head: tuple[datetime, bytes, bytes] | None = None
        # model -> (topic, type, type as JSON): a billing run emits a million of one model
        self._routes: dict[type[BaseModel], tuple[str, str, bytes]] = {}

    def add(self, now: datetime, key: str, data: BaseModel) -> None:
        self.add_json(now, type(data), key, data.model_dump_json().encode())

    def add_json(self, now: datetime, model: type[BaseModel], key: str, data: bytes) -> None:
        """``add`` of an event whose data is already JSON: the caller vouches that it is
        what ``model``'s ``model_dump_json()`` gives (a billing run's invoices, written
        from a checked template; see ``invoicing.service.IssuedJson``)."""
        route = self._routes.get(model)
        if route is None:
            type_, setting = ROUTES[model]
            topic = getattr(self.topics, setting)
            route = self._routes[model] = (topic, type_, _json_string(type_))
        topic, type_, type_json = route
        if self._head is None or self._head[0] != now:
            self._head = (
                now,
                b'","source":' + _STR.dump_json(self.source) + b',"type":',
                b',"time":' + _TIME.dump_json(now) + b',"subject":',
            )
        _, source, time = self._head
        value = b"".join(
            (
                b'{"specversion":"1.0","id":"',
                event_id_text(),
                source,
                type_json,
                time,
                _json_string(key),
                b',"datacontenttype":"application/json","data":',
                data,
                b"}",
            )
        )
        self.append((topic, key.encode(), value, HEADERS, type_))

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        """A record that cannot be applied, to ``topic`` (a ``.dlq``) as it came, with why."""
        headers = Jsonb(
            json.dumps(
                [
                    ["content-type", CONTENT_TYPE],
                    ["dlq-reason", reason],
                    ["dlq-consumer", self.source],
                ]
            )
        )
        self.append((topic, key, value or b"", headers, DEAD_LETTER))

    async def write(self, conn: asyncpg.Connection) -> int:
        """Write the queued events to the ``outbox`` table; how many. A billing run's chunk
        or a timer sweep (``COPY_AT_LEAST`` and more) goes by COPY, long runs packed;
        fewer go in one INSERT of arrays."""
        if not self:
            return 0
        if len(self) >= COPY_AT_LEAST:
            await conn.copy_records_to_table(
                "outbox",
                records=packed(self),  # headers are Jsonb: written as they are
                columns=["topic", "key", "value", "headers", "event_type", "records"],
            )
            await conn.execute(Q.wake_relay)
            return len(self)
        topics, keys, values, headers, types = zip(*self, strict=True)
        await conn.execute(Q.write_outbox, topics, keys, values, headers, types)
        return len(self)


def packed(outbox: list[OutboxRow]) -> list[PackedRow]:
    """Outbox rows in emit order, each run of at least ``PACK_AT_LEAST`` consecutive events
    of one topic, type and headers (the same ``Jsonb``: a dead letter's are its own) packed
    ``PACK_MAX`` at most a row; shorter runs stay a row an event (``records`` NULL)."""
    out: list[PackedRow] = []
    i, n = 0, len(outbox)
    while i < n:
        topic, _, _, headers, type_ = outbox[i]
        j = i + 1
        while (
            j < n
            and j - i < PACK_MAX
            and outbox[j][4] == type_
            and outbox[j][0] == topic
            and outbox[j][3] is headers
        ):
            j += 1
        if j - i >= PACK_AT_LEAST:
            value = pack((key, value) for _, key, value, _, _ in outbox[i:j])
            out.append((topic, None, value, headers, type_, j - i))
        else:
            out += ((*row, None) for row in outbox[i:j])
        i = j
    return out


def _json_string(text: str) -> bytes:
    if text.isascii() and text.replace(".", "").isalnum():  # a contract number, a type name
        return b'"' + text.encode() + b'"'  # nothing to escape
    return _STR.dump_json(text)


# --- publishing: the relay ---------------------------------------------------------------

_LENGTH = struct.Struct(">i")
_NO_KEY = _LENGTH.pack(-1)


_M = 0x5BD1E995  # the mixing constant of MurmurHash2
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka's partitioner computes it (Java client, Utils.murmur2;
    aiokafka's ``DefaultPartitioner`` is the same): the key's partition is this hash, its
    sign bit cleared, modulo the number of partitions. The same arithmetic as aiokafka's
    pure-Python one, four bytes at a time through ``struct`` instead of one by one: a
    billing run partitions a million keys (docs/performance.md#finding-29)."""
    length = len(data)
    h = 0x9747B28C ^ length  # the seed
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail, rest = words << 2, length & 3
    if rest:
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def key_partition(key: bytes, parts: list[int]) -> int:
    """The partition of ``parts`` (sorted) Kafka's default partitioner gives ``key``."""
    return parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)]


def pack(records: Iterable[tuple[bytes | None, bytes]]) -> bytes:
    """Events (key, value) as one outbox value: each a 4-byte big-endian key length (-1:
    no key), the key, a 4-byte value length, the value; Kafka's own framing of the two."""
    parts: list[bytes] = []
    for key, value in records:
        if key is None:
            parts.append(_NO_KEY)
        else:
            parts += (_LENGTH.pack(len(key)), key)
        parts += (_LENGTH.pack(len(value)), value)
    return b"".join(parts)


def unpack(
    value: bytes, records: int, where: str = "packed value"
) -> list[tuple[bytes | None, bytes]]:
    """The ``records`` events ``pack`` wrote into ``value``; anything else is an error that
    names ``where`` (the row), never a silently shorter list."""
    out: list[tuple[bytes | None, bytes]] = []
    pos, end, unpack_from = 0, len(value), _LENGTH.unpack_from
    try:
        while pos < end:
            (n,) = unpack_from(value, pos)
            pos += 4
            key = None
            if n >= 0:
                key = value[pos : pos + n]
                pos += n
            (n,) = unpack_from(value, pos)
            pos += 4
            if n < 0 or pos + n > end:
                raise ValueError(f"a value of {n} bytes at byte {pos}")
            out.append((key, value[pos : pos + n]))
            pos += n
    except (struct.error, ValueError) as exc:
        raise ValueError(f"{where}: packed events are malformed ({exc})") from None
    if pos != end or len(out) != records:
        raise ValueError(f"{where}: {len(out)} packed events in {end} bytes, {records} expected")
    return out


def make_producer(settings: Settings) -> AIOKafkaProducer:
    from aiokafka import AIOKafkaProducer

    from services.runtime.kafka_client import client_options

    # Idempotent: a send retried after a broker failover is written once. The inbox would
    # make a duplicate harmless anyway; this keeps it off the topics (and out of the DLQ
    # count of a third party's consumer without an inbox).
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        # the relay hands over whole record batches (send_batch): nothing to wait for
        linger_ms=0,
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
        self._partitions: dict[str, list[int]] = {}
        self._by_key: dict[tuple[str, bytes], int] = {}

    async def publish_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await db.try_schema_lock(conn, "outbox"):
                return 0
            rows = sorted(await conn.fetch(Q.take_outbox, self.batch), key=lambda r: r["id"])
            if not rows:
                OUTBOX_BACKLOG.labels(self.service).set(0)
                return 0
            await self._send(rows)
            events: Counter[tuple[str, str]] = Counter()
            for r in rows:
                events[r["topic"], r["event_type"]] += r["records"] or 1
            for (topic, type_), n in events.items():
                EVENTS_OUT.labels(self.service, topic, type_).inc(n)
            taken = sum(events.values())
            # A round short of ``batch`` took all there was when it read: no backlog, and
            # no query to learn it. Otherwise an estimate from the primary key's end, O(1)
            # where count(*) would scan a large backlog on every round: the id span after
            # what was just published (ids skip where a transaction rolled back; a packed
            # row counts once).
            backlog = 0
            if taken >= self.batch:
                backlog = await conn.fetchval(Q.outbox_backlog, rows[-1]["id"])
            OUTBOX_BACKLOG.labels(self.service).set(max(0, backlog))
            return taken

    async def _send(self, rows: list[asyncpg.Record]) -> None:
        """Hand the rows' events to the producer as record batches, one open batch per
        partition, filled in id order (a packed row's events in their order), and wait
        until all are acknowledged. The partition is the one ``send()`` would pick (the
        default murmur2 partitioner on the key), so every producer of a key lands on the
        same partition; a batch per partition costs a fraction of a ``send()`` per record."""
        futures: list[asyncio.Future[Any]] = []
        open_batches: dict[tuple[str, int], Any] = {}
        for topic in {row["topic"] for row in rows}:  # partitions added since: map again
            parts = sorted(await self.producer.partitions_for(topic))
            if parts != self._partitions.get(topic):
                self._partitions[topic] = parts
                self._by_key = {k: p for k, p in self._by_key.items() if k[0] != topic}
        for row in rows:
            topic, headers = row["topic"], _headers(row["headers"], row["event_type"])
            if row["records"] is None:
                events = [(row["key"], row["value"])]
            else:
                events = unpack(row["value"], row["records"], f"outbox row {row['id']}")
            for key, value in events:
                partition = self._partition(topic, key)
                batch = open_batches.get((topic, partition))
                if batch is None:
                    batch = open_batches[topic, partition] = self.producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    # full: send it, start the next
                    futures.append(
                        await self.producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = open_batches[topic, partition] = self.producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        raise ValueError(
                            f"an event of outbox row {row['id']} is larger than a record batch"
                        )
        for (topic, partition), batch in open_batches.items():
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    def _partition(self, topic: str, key: bytes | None) -> int:
        parts = self._partitions[topic]
        if key is None:
            return random.choice(parts)
        found = self._by_key.get((topic, key))
        if found is None:
            if len(self._by_key) > 100_000:
                self._by_key.clear()
            found = self._by_key[topic, key] = key_partition(key, parts)
        return found

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
