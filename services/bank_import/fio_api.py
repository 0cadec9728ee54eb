"""Fetching statements from Fio banka's API by token.

Fio allows one request per token every 30 seconds and answers 409 Conflict to anything
faster. The time of our last request per token lives in PostgreSQL, so a cron job, an
operator's manual fetch and a second machine all wait their turn instead of failing.

We ask for a date window (``periods``), never for "since last download" (``last``): that
endpoint moves Fio's bookmark as soon as it answers, so a file we then reject or fail to
store would be gone. Overlapping windows are harmless because importing dedupes on the
movement id.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date, datetime, timedelta

import aiohttp
import asyncpg

from services.bank_import.importer import Q
from services.runtime import logs

log = logs.get(__name__)

DEFAULT_BASE_URL = "https://fioapi.fio.cz/v1/rest"
MIN_INTERVAL = 30.0


class FioError(RuntimeError):
    pass


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FioClient:
    def __init__(
        self,
        token: str,
        pool: asyncpg.Pool,
        base_url: str = DEFAULT_BASE_URL,
        min_interval: float = MIN_INTERVAL,
        attempts: int = 4,
        timeout: float = 60.0,
    ) -> None:
        if not token.strip():
            raise FioError("Fio API token is empty")
        self.token = token.strip()
        self.pool = pool
        self.base_url = base_url.rstrip("/")
        self.min_interval = min_interval
        self.attempts = attempts
        self.timeout = timeout

    async def period(self, start: date, end: date) -> bytes:
        if end < start:
            raise FioError(f"--to {end} is before --from {start}")
        path = f"periods/{self.token}/{start.isoformat()}/{end.isoformat()}/transactions.json"
        return await self._get(path)

    async def _get(self, path: str) -> bytes:
        url = f"{self.base_url}/{path}"
        shown = url.replace(self.token, "***")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
            for attempt in range(1, self.attempts + 1):
                async with self.pool.acquire() as conn, conn.transaction():
                    # The row lock serialises every process using this token.
                    last: datetime | None = await conn.fetchval(
                        Q.fio_last_request, digest(self.token)
                    )
                    now: datetime = await conn.fetchval(Q.server_time)
                    if last is not None:
                        wait = self.min_interval - (now - last).total_seconds()
                        if wait > 0:
                            log.info("fio rate limit: waiting", seconds=round(wait, 1))
                            await asyncio.sleep(wait)
                    async with http.get(url) as resp:
                        body = await resp.read()
                        await conn.execute(
                            Q.fio_mark_request,
                            digest(self.token),
                            await conn.fetchval(Q.server_time),
                        )
                        status = resp.status
                if status == 200:
                    return body
                if status == 409:
                    log.warning("fio answered 409 (too many requests)", attempt=attempt)
                    continue  # the next round waits the full interval
                raise FioError(f"{shown}: HTTP {status}: {body[:200].decode(errors='replace')}")
        raise FioError(f"{shown}: still 409 (rate limited) after {self.attempts} attempts")


def window(days: int, today: date) -> tuple[date, date]:
    return today - timedelta(days=days), today
