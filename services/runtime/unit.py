"""A unit of work: one PostgreSQL transaction plus the events it will publish.

Handlers take a whole run of events (``services.runtime.runs``); three ways to do
set-based work over it and over the batch, all finished by ``flush`` before the commit:
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

``emit(key, model)`` queues an event; its type and topic are the model's, its envelope and
how it is written the outbox module's (``outbox.Outbox``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.runtime.outbox import Outbox
from services.runtime.settings import Topics

_ONE_BY_ONE = object()  # the key of a write staged with ``stage``


@dataclass
class Unit:
    conn: asyncpg.Connection
    now: datetime
    source: str
    topics: Topics | None = None  # where events go; None: the settings' topics
    outbox: Outbox = field(init=False)
    staged: list[tuple[str, tuple[Any, ...], Any]] = field(default_factory=list)
    deferred: dict[Work, dict[str, None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.source, self.topics)

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

    def emit(self, key: str, data: BaseModel) -> None:
        """Queue an event: ``data``'s type and topic are its model's; written to the
        outbox in this unit's transaction."""
        self.outbox.add(self.now, key, data)

    def emit_json(self, model: type[BaseModel], key: str, data: bytes) -> None:
        """``emit`` of an event whose data is already JSON (``Outbox.add_json``)."""
        self.outbox.add_json(self.now, model, key, data)

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        self.outbox.dead_letter(topic, key, value, reason)

    async def flush(self) -> int:
        """Finish deferred and staged work, then write the queued events to the outbox.
        Called just before commit."""
        await self.settle()
        return await self.outbox.write(self.conn)


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the parameters of an ``unnest`` statement."""
    return [list(column) for column in zip(*rows, strict=True)]


Work = Callable[[Unit, list[str]], Awaitable[None]]
