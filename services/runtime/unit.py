"""A unit of work: one PostgreSQL transaction plus the events it will publish."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from schemas.envelope import CONTENT_TYPE, envelope


@dataclass
class Unit:
    conn: asyncpg.Connection
    now: datetime
    source: str
    outbox: list[tuple[str, bytes | None, bytes, str, str]] = field(default_factory=list)

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
        """Write the queued events to the outbox. Called just before commit."""
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
