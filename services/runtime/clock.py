"""Where every worker gets "now" (DESIGN section 5).

`SystemClock` is production. `SharedTestClock` adds an offset stored in the database
(schema ``billing_clock``) that `billing clock set/advance` moves for the whole system; each
worker re-reads it when PostgreSQL notifies a change and before every batch and timer sweep.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import asyncpg

from services.runtime import sql

if TYPE_CHECKING:
    from services.runtime.settings import Settings

Q = sql.load(__file__)
CLOCK_CHANNEL = "billing_clock"


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def refresh(self, conn: asyncpg.Connection) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def refresh(self, conn: asyncpg.Connection) -> None:
        return None


class SharedTestClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def refresh(self, conn: asyncpg.Connection) -> None:
        value = await conn.fetchval(Q.clock_offset)
        self.offset = timedelta(seconds=value or 0.0)


async def ensure_clock_schema(conn: asyncpg.Connection) -> None:
    await conn.execute(Q.create_clock)


async def set_clock(conn: asyncpg.Connection, target: datetime) -> None:
    offset = (target - datetime.now(UTC)).total_seconds()
    await _store(conn, offset)


async def advance_clock(conn: asyncpg.Connection, by: timedelta) -> datetime:
    current = await conn.fetchval(Q.clock_offset) or 0.0
    offset = current + by.total_seconds()
    await _store(conn, offset)
    return datetime.now(UTC) + timedelta(seconds=offset)


async def read_clock(conn: asyncpg.Connection) -> datetime:
    offset = await conn.fetchval(Q.clock_offset) or 0.0
    return datetime.now(UTC) + timedelta(seconds=offset)


async def _store(conn: asyncpg.Connection, offset: float) -> None:
    async with conn.transaction():
        await conn.execute(Q.store_clock_offset, offset)
        await conn.execute(Q.notify_clock, CLOCK_CHANNEL)


def make_clock(settings: Settings) -> Clock:
    """The shared test clock in test/demo mode, else the system's."""
    return SharedTestClock() if settings.test_clock else SystemClock()
