"""Publishing a parsed statement: dedupe, outbox, Kafka.

1. In one transaction, record each movement in ``bank_import.imported`` (primary key:
   account + bank movement id) and, for those not seen before, write a
   ``payment.received.v1`` event to this schema's outbox.
2. Publish the outbox with ``acks=all`` and delete what was acknowledged.

A crash between 1 and 2, or a cluster that does not answer (``NotPublished``, after
``BILLING_KAFKA_CONNECT_TIMEOUT``), leaves the events in the outbox; the next import (of
any file) publishes them, before its own. Re-importing a file, or an overlapping
statement, finds every movement already recorded and publishes nothing. The payments
worker dedupes on the same key as well, so a third-party importer that publishes twice
is harmless too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka.errors import KafkaError

from schemas.events import PaymentReceived, StatementImported
from services.runtime import audit, db, sql
from services.runtime.clock import make_clock
from services.runtime.errors import Unavailable
from services.runtime.kafka_client import BrokerUnavailable, start_producer
from services.runtime.outbox import OutboxRelay, make_producer
from services.runtime.settings import Settings, Topics
from services.runtime.unit import Unit

SCHEMA = "bank_import"
SOURCE = "/importers/statement"
Q = sql.load(__file__)


class NotPublished(Unavailable):
    """The statement is recorded, its events wait in the outbox: the message says so
    (exit 69: Kafka did not answer; importing again publishes them)."""


@dataclass(frozen=True)
class ImportReport:
    parsed: int
    new: int
    published: int

    @property
    def already(self) -> int:
        return self.parsed - self.new


async def now_for(settings: Settings, conn: asyncpg.Connection) -> datetime:
    clock = make_clock(settings)
    await clock.refresh(conn)
    return clock.now()


async def record(
    conn: asyncpg.Connection,
    movements: list[PaymentReceived],
    file: str,
    fmt: str,
    now: datetime,
    topics: Topics | None = None,
    accounts: Sequence[str] = (),
) -> int:
    """Step 1, inside the caller's transaction. Returns how many were new. ``topics``:
    where the events go, when not to the settings' topics (the bench's, one a format).
    ``accounts``: ours the file is a statement of; each gets a ``bank_statement.imported``
    after the movements, also when it held none or only movements imported before (the
    operators' overdue-import alert counts imports, not payments)."""
    unit = Unit(conn, now, SOURCE, topics)
    rows = await conn.fetch(
        Q.insert_new,
        [m.account for m in movements],
        [m.bank_tx_id for m in movements],
        file,
        fmt,
        [m.amount_minor for m in movements],
        [m.currency for m in movements],
        now,
    )
    new = {(r["account"], r["bank_tx_id"]) for r in rows}
    for m in movements:
        if (m.account, m.bank_tx_id) in new:
            unit.emit(m.vs or m.bank_tx_id, m)
    held = Counter(m.account for m in movements)
    for account in accounts:
        unit.emit(
            account,
            StatementImported(account=account, imported_at=now, movements=held[account], file=file),
        )
    await unit.flush()
    return len(new)


async def publish_pending(
    settings: Settings, pool: asyncpg.Pool, progress: Callable[[int], None] | None = None
) -> int:
    """Step 2: everything in the outbox, including what an earlier run left behind.
    ``progress`` hears the number of events published after each round."""
    async with pool.acquire() as conn:
        if not await conn.fetchval(Q.outbox_has_events):
            return 0
    producer = make_producer(settings)
    await start_producer(producer, settings, "import")
    try:
        relay = OutboxRelay(SCHEMA, pool, producer, batch=5000)
        total = 0
        while True:
            sent = await relay.publish_once()
            if not sent:
                async with pool.acquire() as conn:
                    if not await conn.fetchval(Q.outbox_has_events):
                        return total
                await asyncio.sleep(0.05)  # another importer holds the relay lock
                continue
            total += sent
            if progress is not None:
                progress(total)
    finally:
        await producer.stop()


async def import_movements(
    settings: Settings,
    movements: list[PaymentReceived],
    file: str,
    fmt: str,
    operator: str | None = None,
    progress: Callable[[int], None] | None = None,
    accounts: Sequence[str] = (),
) -> ImportReport:
    """Record, then publish; an ``operator``'s import goes into the audit trail with it.
    ``accounts``: the statement's (``record``), none for a payment entered by hand."""
    await db.migrate(settings.database_url, SCHEMA)
    pool = await db.create_pool(settings.database_url, SCHEMA, max_size=2)
    try:
        # Recorded first, so a cluster that is down loses nothing: the outbox publishes
        # in its order, an interrupted run's events before this statement's.
        async with pool.acquire() as conn, conn.transaction():
            now = await now_for(settings, conn)
            new = await record(conn, movements, file, fmt, now, accounts=accounts)
            if operator is not None:
                details = {"file": file, "format": fmt, "movements": len(movements), "new": new}
                await audit.record(conn, now, operator, "import-statement", None, details)
        try:
            published = await publish_pending(settings, pool, progress)
        except (BrokerUnavailable, KafkaError) as exc:
            async with pool.acquire() as conn:
                waiting = await conn.fetchval(Q.outbox_rows)
            raise NotPublished(
                f"{file}: {new} new movements recorded, {waiting} events wait in the"
                f" importer's outbox and were not published ({exc}); import again (any"
                " statement, this one too: nothing is recorded twice) once Kafka answers"
            ) from exc
        return ImportReport(len(movements), new, published)
    finally:
        await pool.close()
