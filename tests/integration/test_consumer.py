"""The batch consumer against the real PostgreSQL: inbox dedupe, dead letters, isolation of
a failing event, the outbox written in the same transaction, and keyed types applied
without inbox rows."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg

from schemas.envelope import envelope
from schemas.events import NoticeAcknowledged, PromiseMade
from services.runtime import db
from services.runtime.clock import SystemClock
from services.runtime.consumer import BatchConsumer, Record
from services.runtime.runs import Run
from services.runtime.unit import Unit


def record(offset: int, value: bytes | None) -> Record:
    return Record("billing.notices", 0, offset, b"1002", value, None)


def ack_event() -> bytes:
    data = NoticeAcknowledged(
        contract="1002", acknowledged_at=datetime.now(UTC), address="127.0.100.2", user_agent="test"
    )
    return (
        envelope("notice.acknowledged.v1", "/test", "1002", data, datetime.now(UTC))
        .model_dump_json()
        .encode()
    )


def test_inbox_dlq_and_isolation(database_url: str) -> None:
    asyncio.run(_scenario(database_url))


async def _scenario(url: str) -> None:
    await db.migrate(url, "dunning")
    pool = await db.create_pool(url, "dunning")
    applied: list[str] = []

    async def handler(unit: Unit, run: Run[NoticeAcknowledged]) -> None:
        for event, data in run.pairs():
            if event.id in exploding:
                raise RuntimeError("boom")
            applied.append(str(event.id))
            unit.emit("1002", data)

    consumer = BatchConsumer("dunning", pool, SystemClock(), {NoticeAcknowledged: handler})
    good, bad = ack_event(), ack_event()
    exploding = {uuid.UUID(json.loads(bad)["id"])}
    await consumer.apply([record(0, good), record(1, b"{broken"), record(2, bad), record(3, good)])
    # The first attempt of the batch rolled back when "bad" raised; the retry one event per
    # transaction applied "good" once (its repeat inside the batch counts once).
    assert applied[-1] == json.loads(good)["id"]
    calls = len(applied)
    await consumer.apply([record(0, good)])  # redelivery after a crash: a no-op
    assert len(applied) == calls
    async with pool.acquire() as conn:
        inbox = {str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM inbox")}
        assert inbox == {json.loads(good)["id"]}
        letters = await conn.fetch('SELECT "offset", reason FROM dead_letters ORDER BY "offset"')
        outbox = await conn.fetch("SELECT topic, headers FROM outbox ORDER BY id")
    assert [r["offset"] for r in letters] == [1, 2]
    assert "not a CloudEvent" in letters[0]["reason"]
    assert "boom" in letters[1]["reason"]
    topics = [r["topic"] for r in outbox]
    assert topics.count("billing.notices") == 1
    assert topics.count("billing.notices.dlq") == 2
    assert any(h[0] == "dlq-reason" and "boom" in h[1] for r in outbox for h in r["headers"])
    await pool.close()


def test_staged_rows_apply_as_one_by_one_in_few_statements(database_url: str) -> None:
    asyncio.run(_staged_rows(database_url))


async def _staged_rows(url: str) -> None:
    """Rows staged for a set-based upsert, a key repeated three times and a plain write
    between them: the same table as applying each row in order, with each repeat in a
    later statement (one statement cannot update a row twice), in four executions."""
    conn = await db.connect(url)
    upsert = (
        "INSERT INTO rows_test SELECT * FROM unnest($1::text[], $2::int[]) AS u(k, v)"
        " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, updates = rows_test.updates + 1"
    )
    executed: list[str] = []
    try:
        await conn.execute(
            "CREATE TEMP TABLE rows_test (k text PRIMARY KEY, v int, updates int DEFAULT 0)"
        )

        class Counted:  # the connection, counting what the unit executes
            async def execute(self, query: str, *args: object) -> str:
                executed.append(query)
                return await conn.execute(query, *args)

        async with conn.transaction():
            unit = Unit(Counted(), datetime.now(UTC), "/test")  # type: ignore[arg-type]
            for k, v in (("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5)):
                unit.stage_row(upsert, k, k, v)
            unit.stage("UPDATE rows_test SET v = v * 10 WHERE k = $1", "b")
            unit.stage_row(upsert, "b", "b", 7)
            await unit.drain()
        rows = [tuple(r) for r in await conn.fetch("SELECT * FROM rows_test ORDER BY k")]
        assert rows == [("a", 5, 2), ("b", 7, 1), ("c", 4, 0)]
        assert len(executed) == 5 and executed.count(upsert) == 4
    finally:
        await conn.close()


def test_keyed_types_apply_without_inbox_rows(database_url: str) -> None:
    asyncio.run(_keyed(database_url))


async def _keyed(url: str) -> None:
    """Events of a ``keyed`` type (their handler idempotent by the event's own key) leave
    no inbox row: a repeat inside one batch applies once, a redelivery applies again (the
    handler makes that harmless); other types still go through the inbox."""
    await db.migrate(url, "dunning")
    pool = await db.create_pool(url, "dunning")
    applied: list[tuple[str, str]] = []

    async def handler(unit: Unit, run: Run[NoticeAcknowledged | PromiseMade]) -> None:
        applied.extend((event.type, str(event.id)) for event in run.events)

    consumer = BatchConsumer(
        "dunning",
        pool,
        SystemClock(),
        {NoticeAcknowledged: handler, PromiseMade: handler},
        keyed=frozenset({NoticeAcknowledged}),
    )
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE inbox")
    promise = PromiseMade(contract="1002", days=7, by="customer", made_at=datetime.now(UTC))
    made = envelope("promise.made.v1", "/test", "1002", promise, promise.made_at)
    plain, keyed = made.model_dump_json().encode(), ack_event()
    await consumer.apply([record(0, keyed), record(1, plain), record(2, keyed)])
    ids = (json.loads(keyed)["id"], json.loads(plain)["id"])
    assert applied == [("notice.acknowledged.v1", ids[0]), ("promise.made.v1", ids[1])]
    await consumer.apply([record(0, keyed), record(1, plain)])  # redelivered
    assert applied[2:] == [("notice.acknowledged.v1", ids[0])]
    async with pool.acquire() as conn:
        inbox = {str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM inbox")}
    assert inbox == {ids[1]}
    await pool.close()


def test_types_not_ours_are_skipped_by_their_header_unparsed(database_url: str) -> None:
    asyncio.run(_not_ours(database_url))


async def _not_ours(url: str) -> None:
    """A record whose event-type header (the relay's, outbox.py) names a type this consumer
    does not handle is skipped unparsed: even a value that would be poison leaves no dead
    letter, and a batch of nothing else opens no transaction. A record without the header
    (another producer's) is parsed as before; a handled type's header changes nothing."""
    await db.migrate(url, "dunning")
    pool = await db.create_pool(url, "dunning")
    applied: list[str] = []

    async def handler(unit: Unit, run: Run[NoticeAcknowledged]) -> None:
        applied.extend(str(event.id) for event in run.events)

    class Counting(SystemClock):  # a batch's transaction starts by reading the clock
        transactions = 0

        async def refresh(self, conn: asyncpg.Connection) -> None:
            Counting.transactions += 1

    consumer = BatchConsumer("dunning", pool, Counting(), {NoticeAcknowledged: handler})
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE inbox, dead_letters, outbox")

    def rec(offset: int, value: bytes, event_type: str | None) -> Record:
        return Record("billing.dunning", 0, offset, b"1002", value, None, event_type)

    not_ours = "reminder.requested.v1"
    await consumer.apply([rec(0, b"{broken", not_ours), rec(1, b"{broken", not_ours)])
    assert Counting.transactions == 0
    ack = ack_event()
    await consumer.apply(
        [rec(2, b"{broken", not_ours), rec(3, ack, "notice.acknowledged.v1"), rec(4, b"{x", None)]
    )
    assert applied == [json.loads(ack)["id"]]
    assert Counting.transactions == 1
    async with pool.acquire() as conn:
        letters = await conn.fetch('SELECT "offset" FROM dead_letters ORDER BY "offset"')
    assert [r["offset"] for r in letters] == [4]  # parsed without a header: poison
    await pool.close()


def test_a_header_naming_no_known_type_does_not_hide_the_record(database_url: str) -> None:
    asyncio.run(_wrong_header(database_url))


async def _wrong_header(url: str) -> None:
    """Only a type the registry knows and this service does not handle is skipped by its
    header. A header naming a type nobody knows (a typo, another version, garbage bytes)
    or none at all: the record is parsed, applied when it is a valid event of ours, and
    dead-lettered when it is not, never dropped unseen."""
    from services.runtime.source import _event_type

    await db.migrate(url, "dunning")
    pool = await db.create_pool(url, "dunning")
    applied: list[str] = []

    async def handler(unit: Unit, run: Run[NoticeAcknowledged]) -> None:
        applied.extend(str(event.id) for event in run.events)

    consumer = BatchConsumer("dunning", pool, SystemClock(), {NoticeAcknowledged: handler})
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE inbox, dead_letters, outbox")

    def rec(offset: int, value: bytes, event_type: str | None) -> Record:
        return Record("billing.notices", 0, offset, b"1002", value, None, event_type)

    garbled = _event_type([("event-type", b"\xffnotice\xfe")])
    assert garbled is not None and _event_type([("event-type", None)]) is None  # type: ignore[list-item]
    ack, ack2 = ack_event(), ack_event()
    await consumer.apply(
        [
            rec(0, b"{broken", "notice.acknowledged.v2"),  # unknown version: poison
            rec(1, b"{broken", "no-such-type"),
            rec(2, b"{broken", None),
            rec(3, ack, "notice.acknowledge.v1"),  # a typo over a valid event: applied
            rec(4, ack2, garbled),
            rec(5, b"{broken", "reminder.requested.v1"),  # known, not ours: skipped
        ]
    )
    assert applied == [json.loads(ack)["id"], json.loads(ack2)["id"]]
    async with pool.acquire() as conn:
        letters = await conn.fetch('SELECT "offset" FROM dead_letters ORDER BY "offset"')
        dlq = await conn.fetchval("SELECT count(*) FROM outbox WHERE topic = 'billing.notices.dlq'")
    assert [r["offset"] for r in letters] == [0, 1, 2]
    assert dlq == 3
    await pool.close()
