"""The batch consumer against the real PostgreSQL: inbox dedupe, dead letters, isolation of
a failing event, and the outbox written in the same transaction."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel

from schemas.envelope import CloudEvent, envelope
from schemas.events import NoticeAcknowledged
from services.runtime import db
from services.runtime.clock import SystemClock
from services.runtime.consumer import BatchConsumer, Record
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

    async def handler(unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        if event.id in exploding:
            raise RuntimeError("boom")
        applied.append(str(event.id))
        unit.emit("billing.out", "notice.acknowledged.v1", "1002", data)

    consumer = BatchConsumer("dunning", pool, SystemClock(), {"notice.acknowledged.v1": handler})
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
    assert topics.count("billing.out") == 1
    assert topics.count("billing.notices.dlq") == 2
    assert any(h[0] == "dlq-reason" and "boom" in h[1] for r in outbox for h in r["headers"])
    await pool.close()
