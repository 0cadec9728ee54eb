"""Durable timers: rows in the service's ``timers`` table (DESIGN section 5).

A sweep claims due rows with ``FOR UPDATE SKIP LOCKED`` so any number of instances share
them, deletes them and calls the service's handler in the same transaction; the handler
schedules the next one. A crash before commit leaves the row due, so no timer is lost.
A service with a batch handler gets all claimed keys at once (set-based work); if that
fails for a reason other than a lost connection, the sweep falls back to one savepoint
per key, so one failing contract cannot block the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg

from services.runtime import logs, sql
from services.runtime.clock import Clock
from services.runtime.consumer import TRANSIENT
from services.runtime.metrics import TIMERS_FIRED
from services.runtime.unit import Unit

log = logs.get(__name__)
Q = sql.load(__file__)

TimerHandler = Callable[[Unit, str], Awaitable[None]]
BatchTimerHandler = Callable[[Unit, list[str]], Awaitable[None]]

RETRY_FAILED_TIMER = timedelta(minutes=15)


async def schedule(conn: asyncpg.Connection, key: str, due_at: datetime | None) -> None:
    """Set (or clear, with None) the one pending timer of ``key``."""
    await schedule_many(conn, [key], [due_at])


async def schedule_many(
    conn: asyncpg.Connection, keys: list[str], due: list[datetime | None]
) -> None:
    """``schedule`` for many keys in two statements."""
    clear = [k for k, d in zip(keys, due, strict=True) if d is None]
    if clear:
        await conn.execute(Q.clear_timers, clear)
    keep = [(k, d) for k, d in zip(keys, due, strict=True) if d is not None]
    if keep:
        await conn.execute(Q.set_timers, [k for k, _ in keep], [d for _, d in keep])


class TimerLoop:
    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        clock: Clock,
        handler: TimerHandler,
        poll_interval: float = 1.0,
        batch: int = 500,
        batch_handler: BatchTimerHandler | None = None,
    ) -> None:
        self.service = service
        self.pool = pool
        self.clock = clock
        self.handler = handler
        self.batch_handler = batch_handler
        self.poll_interval = poll_interval
        self.batch = batch
        self.wakeup = asyncio.Event()
        self.source = f"/services/{service}"

    async def sweep_once(self) -> int:
        async with self.pool.acquire() as conn:
            await self.clock.refresh(conn)
            now = self.clock.now()
            async with conn.transaction():
                rows = await conn.fetch(Q.claim_due_timers, now, self.batch)
                unit = Unit(conn, now, self.source)
                keys = [row["key"] for row in rows]
                if keys and self.batch_handler is not None:
                    try:
                        async with conn.transaction():
                            await conn.execute(Q.clear_timers, keys)
                            await self.batch_handler(unit, keys)
                            await unit.settle()
                        rows = []  # all done
                    except TRANSIENT:
                        raise
                    except Exception as exc:
                        unit = Unit(conn, now, self.source)
                        log.warning("timer batch failed; one by one", error=repr(exc))
                for row in rows:
                    key = row["key"]
                    queued = len(unit.outbox)
                    try:
                        async with conn.transaction():
                            await conn.execute(Q.clear_timer, key)
                            with logs.bound(contract=key):
                                await self.handler(unit, key)
                                await unit.settle()
                    except TRANSIENT:
                        raise  # the whole sweep is retried on the next round
                    except Exception as exc:
                        del unit.outbox[queued:]
                        unit.staged.clear()
                        unit.deferred.clear()
                        log.error("timer failed; retrying later", key=key, error=repr(exc))
                        await schedule(conn, key, now + RETRY_FAILED_TIMER)
                await unit.flush()
        TIMERS_FIRED.labels(self.service).inc(len(keys))
        return len(keys)

    async def run(self) -> None:
        while True:
            try:
                while await self.sweep_once() >= self.batch:
                    pass
            except Exception as exc:
                log.error("timer sweep failed; retrying", error=repr(exc))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), self.poll_interval)
            self.wakeup.clear()
