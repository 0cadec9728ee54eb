"""A unit of work: one PostgreSQL transaction plus the events it will publish.

Two ways for handlers to do set-based work over a whole consumed batch instead of a round
trip per event, both finished by ``flush`` before the commit:
- ``stage(query, *args)``: a write whose result the handler does not need. Staged writes
  run in the order staged; consecutive ones of the same statement go as one pipelined
  ``executemany``. ``drain()`` runs them now (before reading what they write).
- ``later(work, key)``: work per key, run once for all keys gathered (deduplicated, in
  first-seen order) when the batch is done, or earlier through ``settle()``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from schemas.envelope import CONTENT_TYPE, envelope


@dataclass
class Unit:
    conn: asyncpg.Connection
    now: datetime
    source: str
    outbox: list[tuple[str, bytes | None, bytes, str, str]] = field(default_factory=list)
    staged: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    deferred: dict[Work, dict[str, None]] = field(default_factory=dict)
    # the batch's new events (event, data) and the position of the one being handled:
    # handlers may look ahead to fetch the facts of many events at once
    batch: list[tuple[Any, Any]] = field(default_factory=list)
    position: int = 0
    scratch: dict[str, Any] = field(default_factory=dict)  # handlers' per-unit state

    def stage(self, query: str, *args: Any) -> None:
        self.staged.append((query, args))

    async def drain(self) -> None:
        staged, self.staged = self.staged, []
        i = 0
        while i < len(staged):
            query = staged[i][0]
            j = i
            while j < len(staged) and staged[j][0] == query:
                j += 1
            if j - i == 1:
                await self.conn.execute(query, *staged[i][1])
            else:
                await self.conn.executemany(query, [args for _, args in staged[i:j]])
            i = j

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
        """Queue an event; it is written to the outbox in this unit's transaction."""
        event = envelope(type_, self.source, key, data, self.now)
        value = event.model_dump_json().encode()
        headers = json.dumps([["content-type", CONTENT_TYPE]])
        self.outbox.append((topic, key.encode(), value, headers, type_))

    def dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        headers = json.dumps(
            [["content-type", CONTENT_TYPE], ["dlq-reason", reason], ["dlq-consumer", self.source]]
        )
        self.outbox.append((topic, key, value or b"", headers, "dead-letter"))

    async def flush(self) -> int:
        """Finish deferred and staged work, then write the queued events to the outbox.
        Called just before commit."""
        await self.settle()
        if not self.outbox:
            return 0
        topics, keys, values, headers, types = zip(*self.outbox, strict=True)
        await self.conn.execute(
            """INSERT INTO outbox (topic, key, value, headers, event_type)
               SELECT t, k, v, h::jsonb, ty
               FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::text[])
                    WITH ORDINALITY AS u(t, k, v, h, ty, n)
               ORDER BY n""",
            topics,
            keys,
            values,
            headers,
            types,
        )
        await self.conn.execute("SELECT pg_notify(current_schema() || '_outbox', '')")
        return len(self.outbox)


Work = Callable[[Unit, list[str]], Awaitable[None]]
