"""A unit of work: one PostgreSQL transaction plus the events it will publish.

Two ways for handlers to do set-based work over a whole consumed batch instead of a round
trip per event, both finished by ``flush`` before the commit:
- ``stage(query, *args)``: a write whose result the handler does not need. Staged writes
  run in the order staged; consecutive ones of the same statement go as one pipelined
  ``executemany``. ``drain()`` runs them now (before reading what they write).
- ``stage_row(query, key, *row)``: a row for a set-based statement that takes one array
  per column (``unnest($1::text[], ...)``). Consecutive rows of one statement go in one
  execution, not one per row: a statement planned and executed once instead of hundreds
  of times (each planned with its parameters, see ``db``). A row whose key is already in
  the group starts the next execution, so two rows of one key never meet in one statement
  (ON CONFLICT cannot touch a row twice) and apply in the order staged, as one by one.
- ``later(work, key)``: work per key, run once for all keys gathered (deduplicated, in
  first-seen order) when the batch is done, or earlier through ``settle()``.
- ``run_of(data, key)``: the run of consecutive same-type events (or of a set of types)
  starting here, for a handler that applies the whole run at its first event.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, TypeAdapter

from schemas.envelope import CONTENT_TYPE, event_id_text
from services.runtime import logs, sql
from services.runtime.db import Jsonb
from services.runtime.outbox import DEAD_LETTER, pack

_ONE_BY_ONE = object()  # the key of a write staged with ``stage``
HEADERS = Jsonb(json.dumps([["content-type", CONTENT_TYPE]]))
COPY_AT_LEAST = 1000  # events a flush writes by COPY from, not by one INSERT of arrays
# In a flush that large, a run of consecutive events of one topic, type and headers of at
# least PACK_AT_LEAST goes as packed rows of at most PACK_MAX (migration 002_outbox_packed)
PACK_AT_LEAST = 100
PACK_MAX = 1000
Q = sql.load(__file__)
# an outbox row as emitted: topic, key, value, headers, event type; and as written, with
# the number of events it packs (None: one)
OutboxRow = tuple[str, bytes | None, bytes, Jsonb, str]
PackedRow = tuple[str, bytes | None, bytes, Jsonb, str, int | None]
_STR = TypeAdapter(str)
_TIME = TypeAdapter(datetime)


@dataclass
class Unit:
    conn: asyncpg.Connection
    now: datetime
    source: str
    outbox: list[OutboxRow] = field(default_factory=list)
    staged: list[tuple[str, tuple[Any, ...], Any]] = field(default_factory=list)
    deferred: dict[Work, dict[str, None]] = field(default_factory=dict)
    # the batch's new events (event, data) and the position of the one being handled:
    # handlers may look ahead to fetch the facts of many events at once
    batch: list[tuple[Any, Any]] = field(default_factory=list)
    position: int = 0
    scratch: dict[str, Any] = field(default_factory=dict)  # handlers' per-unit state
    _head: tuple[datetime, bytes, bytes] | None = field(default=None, repr=False)

    async def handle(self, items: list[tuple[EventHandler, Any, Any]]) -> None:
        """Run each (handler, event, data) in order as one batch: ``batch`` and
        ``position`` let handlers look ahead. The consumer (and tests) come through here."""
        self.batch = [(event, data) for _, event, data in items]
        for self.position, (handler, event, data) in enumerate(items):
            token = logs.EVENT.set((event.subject, event.id, event.type))
            try:
                await handler(self, event, data)
            finally:
                logs.EVENT.reset(token)

    def run_of(
        self, data: Any, key: str, kinds: tuple[type, ...] | None = None
    ) -> list[Any] | None:
        """For a handler applying a run of consecutive events at once (a contracts load, a
        billing run, dunning's requests): the data of the run starting at this event, or
        None when an earlier event of the run already applied this one. The run is of this
        event's type, or of any of ``kinds``. Outside a consumer batch, the run is this
        event alone."""
        run = self.run_events(data, key, kinds)
        return None if run is None else [d for _, d in run]

    def run_events(
        self, data: Any, key: str, kinds: tuple[type, ...] | None = None
    ) -> list[tuple[Any, Any]] | None:
        """``run_of`` with each event beside its data (event None outside a batch)."""
        if not self.batch:
            return [(None, data)]
        if self.position in self.scratch.get(key, range(0)):
            return None
        same = kinds or (type(data),)
        end = self.position
        while end < len(self.batch) and type(self.batch[end][1]) in same:
            end += 1
        self.scratch[key] = range(self.position, end)
        return self.batch[self.position : end]

    def stage(self, query: str, *args: Any) -> None:
        self.staged.append((query, args, _ONE_BY_ONE))

    def stage_row(self, query: str, key: Any, *row: Any) -> None:
        self.staged.append((query, row, key))

    async def drain(self) -> None:
        staged, self.staged = self.staged, []
        i = 0
        while i < len(staged):
            query, _, kind = staged[i]
            j = i
            while j < len(staged) and staged[j][0] == query:
                j += 1
            if kind is not _ONE_BY_ONE:
                await self._rows(query, staged[i:j])
            elif j - i == 1:
                await self.conn.execute(query, *staged[i][1])
            else:
                await self.conn.executemany(query, [args for _, args, _ in staged[i:j]])
            i = j

    async def _rows(self, query: str, staged: list[tuple[str, tuple[Any, ...], Any]]) -> None:
        rows: list[tuple[Any, ...]] = []
        keys: set[Any] = set()
        for _, row, key in staged:
            if key in keys:
                await self.conn.execute(query, *columns(rows))
                rows, keys = [], set()
            rows.append(row)
            keys.add(key)
        await self.conn.execute(query, *columns(rows))

    def later(self, work: Work, key: str) -> None:
        self.deferred.setdefault(work, {})[key] = None

    async def settle(self) -> None:
        """Run all deferred work and staged writes now."""
        while self.deferred:
            work = next(iter(self.deferred))
            keys = list(self.deferred.pop(work))
            await work(self, keys)
        await self.drain()

    def emit(self, topic: str, type_: str, key: str, data: BaseModel) -> None:
        """Queue an event; it is written to the outbox in this unit's transaction.

        The envelope is written around ``data``'s JSON directly: byte for byte what
        ``envelope(...).model_dump_json()`` gives (a test holds them equal), without
        building and validating an envelope model per event (a third of the cost)."""
        self.emit_json(topic, type_, key, data.model_dump_json().encode())

    def emit_json(self, topic: str, type_: str, key: str, data: bytes) -> None:
        """``emit`` of an event whose data is already JSON: the caller vouches that it is
        what its model's ``model_dump_json()`` gives (a billing run's invoices, written
        from a checked template; see ``invoicing.service.IssuedJson``)."""
        if self._head is None or self._head[0] != self.now:
            self._head = (
                self.now,
                b'","source":' + _STR.dump_json(self.source) + b',"type":',
                b',"time":' + _TIME.dump_json(self.now) + b',"subject":',
            )
        _, source, time = self._head
        value = b"".join(
            (
                b'{"specversion":"1.0","id":"',
                event_id_text(),
                source,
                _type_json(type_),
                time,
                _json_string(key),
                b',"datacontenttype":"application/json","data":',
                data,
                b"}",
            )
        )
        self.outbox.append((topic, key.encode(), value, HEADERS, type_))

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        headers = Jsonb(
            json.dumps(
                [
                    ["content-type", CONTENT_TYPE],
                    ["dlq-reason", reason],
                    ["dlq-consumer", self.source],
                ]
            )
        )
        self.outbox.append((topic, key, value or b"", headers, DEAD_LETTER))

    async def flush(self) -> int:
        """Finish deferred and staged work, then write the queued events to the outbox.
        Called just before commit."""
        await self.settle()
        if not self.outbox:
            return 0
        if len(self.outbox) >= COPY_AT_LEAST:  # a billing run's chunk, a timer sweep
            await self.conn.copy_records_to_table(
                "outbox",
                records=packed(self.outbox),  # headers are Jsonb: written as they are
                columns=["topic", "key", "value", "headers", "event_type", "records"],
            )
            await self.conn.execute(Q.wake_relay)
            return len(self.outbox)
        topics, keys, values, headers, types = zip(*self.outbox, strict=True)
        await self.conn.execute(
            Q.write_outbox,
            topics,
            keys,
            values,
            headers,
            types,
        )
        return len(self.outbox)


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


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the parameters of an ``unnest`` statement."""
    return [list(column) for column in zip(*rows, strict=True)]


def _json_string(text: str) -> bytes:
    if text.isascii() and text.replace(".", "").isalnum():  # a contract number, a type name
        return b'"' + text.encode() + b'"'  # nothing to escape
    return _STR.dump_json(text)


# event types as JSON strings: a handful, each emitted millions of times
_type_json = functools.cache(_json_string)

Work = Callable[[Unit, list[str]], Awaitable[None]]
EventHandler = Callable[[Unit, Any, Any], Awaitable[None]]
