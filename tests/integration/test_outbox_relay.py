"""The outbox relay against a Tansu broker: every row published once, in id order per key,
on the partition a plain ``producer.send()`` picks for the key, and the rows deleted."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import REGISTRY

from services.devstack.stack import create_topics
from services.runtime import db
from services.runtime.outbox import OutboxRelay, make_producer, pack, unpack
from services.runtime.settings import Settings, Topics


@pytest.mark.parametrize("packed", [False, True], ids=["a-row-an-event", "packed"])
def test_relay_publishes_in_order_on_the_keys_partition(
    broker: str, database_url: str, packed: bool
) -> None:
    asyncio.run(_relay(broker, database_url, packed))


async def _relay(bootstrap: str, url: str, packed: bool) -> None:
    """3,000 events of 60 keys, a row each or packed 500 a row; rounds of 1,000 events."""
    run = uuid.uuid4().hex  # the topic holds the other run's events too
    settings = Settings(kafka_bootstrap_servers=bootstrap, database_url=url)
    topics = Topics()
    await create_topics(settings, topics)
    await db.migrate(url, "invoicing")
    pool = await db.create_pool(url, "invoicing")
    producer = make_producer(settings)
    await producer.start()
    keys = [f"{100000 + k}" for k in range(60)]
    rows = 3000
    try:
        events = [
            (
                keys[i % len(keys)].encode(),
                json.dumps({"run": run, "seq": i, "big": "x" * (i % 700)}).encode(),
            )
            for i in range(rows)
        ]
        headers = [["content-type", "application/json"]]
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE outbox")
            await conn.executemany(
                "INSERT INTO outbox (topic, key, value, headers, event_type, records)"
                " VALUES ($1, $2, $3, $4, 'x.v1', $5)",
                [
                    (topics.invoices, None, pack(events[i : i + 500]), headers, 500)
                    for i in range(0, rows, 500)
                ]
                if packed
                else [(topics.invoices, key, value, headers, None) for key, value in events],
            )
        relay = OutboxRelay("invoicing", pool, producer, batch=1000)
        published = 0
        backlog = []  # the gauge after each round: what is left behind it
        while n := await relay.publish_once():
            published += n
            backlog.append(
                REGISTRY.get_sample_value("billing_outbox_backlog", {"service": "invoicing"})
            )
        assert published == rows
        assert backlog == ([4, 2, 0] if packed else [2000, 1000, 0])  # rows, not events
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        # where send() puts each key: one record per key on a topic of as many partitions
        expected = {}
        for key in keys:
            meta = await (await producer.send(topics.payments, b"probe", key=key.encode()))
            expected[key] = meta.partition
    finally:
        await producer.stop()
        await pool.close()

    consumer = AIOKafkaConsumer(
        topics.invoices, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    got: dict[str, list[int]] = {}
    try:
        seen = 0
        while seen < rows:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    if json.loads(r.value)["run"] != run:
                        continue
                    assert r.key is not None
                    key = r.key.decode()
                    assert r.partition == expected[key], key
                    assert dict(r.headers)["content-type"] == b"application/json"
                    assert dict(r.headers)["event-type"] == b"x.v1"  # consumers skip by it
                    got.setdefault(key, []).append(json.loads(r.value)["seq"])
                    seen += 1
    finally:
        await consumer.stop()
    assert sum(len(v) for v in got.values()) == rows
    for key, seqs in got.items():
        assert seqs == sorted(seqs), f"key {key} out of order"
        assert len(seqs) == rows // len(keys)


def test_flush_writes_the_same_rows_by_insert_and_by_copy(database_url: str) -> None:
    asyncio.run(_flush(database_url))


async def _flush(url: str) -> None:
    """Below ``COPY_AT_LEAST`` events the outbox is written by one INSERT, from it by COPY
    with runs packed: the same events either way, in emit order, headers as JSON (a dead
    letter's too)."""
    from datetime import UTC, datetime

    from schemas import events as ev
    from services.runtime.outbox import COPY_AT_LEAST, PACK_MAX
    from services.runtime.unit import Unit

    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    data = ev.FeeCharged(
        contract="1001", request_id="r", invoice_number="1", amount_minor=5000,
        currency="CZK", step="fee", policy="p",
    )  # fmt: skip
    listener = await db.connect(url, "invoicing")
    woken = asyncio.Queue[str]()
    await listener.add_listener("invoicing_outbox", lambda *args: woken.put_nowait(args[2]))
    try:
        for n in (3, COPY_AT_LEAST + 5):
            await conn.execute("TRUNCATE outbox")
            async with conn.transaction():
                unit = Unit(conn, now, "/test")
                for i in range(n):
                    unit.emit(f"{1000 + i}", data)
                unit.dead_letter("billing.dunning.dlq", None, b"junk", "not JSON")
                await unit.flush()
            # the relay is woken by the commit, either way
            assert await asyncio.wait_for(woken.get(), 5) == "invoicing_outbox"
            rows = await conn.fetch(
                "SELECT key, value, headers, event_type, records FROM outbox ORDER BY id"
            )
            # from COPY_AT_LEAST on, a run of one type is packed, PACK_MAX events a row; the
            # five left over are too few to pack, and a dead letter is never packed
            shape = [None] * (n + 1) if n < COPY_AT_LEAST else [PACK_MAX] + [None] * 6
            assert [r["records"] for r in rows] == shape
            events = []
            for r in rows:
                if r["records"] is None:
                    events.append((r["key"], r["value"], r["event_type"]))
                else:
                    assert r["key"] is None
                    events += [(k, v, r["event_type"]) for k, v in unpack(r["value"], r["records"])]
            expected = [(k, v, t) for _, k, v, _, t in unit.outbox[:n]]
            assert events[:n] == expected
            assert [k for k, _, _ in expected] == [f"{1000 + i}".encode() for i in range(n)]
            assert rows[0]["headers"] == [["content-type", "application/cloudevents+json"]]
            assert rows[-1]["headers"][1] == ["dlq-reason", "not JSON"]
            assert rows[-1]["key"] is None and rows[-1]["event_type"] == "dead-letter"
    finally:
        await listener.close()
        await conn.close()


def test_a_failed_send_leaves_the_rows_for_the_next_round(database_url: str) -> None:
    asyncio.run(_failed_send(database_url))


async def _failed_send(url: str) -> None:
    """The relay deletes what it publishes in the round's transaction: when the broker does
    not acknowledge, nothing is deleted, and the next round publishes the same rows."""
    await db.migrate(url, "notify")
    pool = await db.create_pool(url, "notify")
    sent: list[list[int]] = []

    class Relay(OutboxRelay):
        fail = True

        async def _send(self, rows: list[Any]) -> None:
            if self.fail:
                raise KafkaTimeoutError()
            sent.append([r["id"] for r in rows])

    try:
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE outbox")
            await conn.executemany(
                "INSERT INTO outbox (topic, key, value, event_type) VALUES ('t', $1, 'v', 'x.v1')",
                [(f"{k}".encode(),) for k in range(5)],
            )
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
        relay = Relay("notify", pool, producer=None, batch=3)  # type: ignore[arg-type]
        with pytest.raises(KafkaTimeoutError):
            await relay.publish_once()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 5
        relay.fail = False
        while await relay.publish_once():
            pass
        assert sent == [ids[:3], ids[3:]]
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await pool.close()
