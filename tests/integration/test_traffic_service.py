"""The traffic service on a real PostgreSQL, through the runtime's consumer (inbox) and
timers: counters with resets and a gear restart give the right 5-minute, hourly and daily
sums; each closed hour is published once, and again (revision 2) after a late report;
retention deletes 5-minute buckets and keeps days."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from schemas import events as ev
from schemas.envelope import envelope
from services.runtime import db
from services.runtime.consumer import BatchConsumer, Record
from services.runtime.outbox import unpack
from services.runtime.timers import TimerLoop
from services.traffic.service import Traffic
from services.traffic.settings import TrafficSettings
from tests.integration.test_cli_scripts import billing, one_line

H10 = datetime(2026, 12, 5, 10, tzinfo=UTC)
A, B, C = "100.64.0.2", "100.64.0.3", "100.64.0.4"  # 1001's, 1002's (gear names none), 1001's
TOPIC = "usage.traffic.counters"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    async def refresh(self, conn: asyncpg.Connection) -> None:
        pass


def counters(
    boot: str, minute: float, rows: list[tuple[str, str | None, int, int]], gear: str = "gw1"
) -> bytes:
    data = ev.TrafficCounters(
        gear=gear, boot_id=boot, report_id=uuid.uuid4().hex, part=1, parts=1,
        collected_at=H10 + timedelta(minutes=minute),
        counters=[
            ev.AddressCounter(address=a, contract=c, rx_bytes=rx, tx_bytes=tx)
            for a, c, rx, tx in rows
        ],
    )  # fmt: skip
    return envelope("traffic.counters.v1", "/gear/gw1", gear, data, H10).model_dump_json().encode()


def contract(number: str, address: str) -> bytes:
    data = ev.ContractUpserted.model_validate(
        {
            "contract": number, "customer_name": "Zákazník", "language": "cs",
            "currency": "CZK", "monthly_fee_minor": 0, "contacts": [], "services": [],
            "subscribers": {"ipv4": [address]},
        }
    )  # fmt: skip
    event = envelope("contract.upserted.v1", "/t", number, data, H10)
    return event.model_dump_json().encode()


async def hours_published(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT value, records FROM outbox WHERE event_type = 'traffic.hour.v1' ORDER BY id"
    )
    values: list[bytes] = []
    for r in rows:
        if r["records"] is None:
            values.append(bytes(r["value"]))
        else:
            values += [v for _, v in unpack(bytes(r["value"]), r["records"])]
    return [json.loads(v)["data"] for v in values]


def test_counters_with_resets_and_a_gear_restart(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_scenario(database_url))
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    period = ["--from", "2026-12-05", "--to", "2026-12-05"]
    code, out, _ = billing(capsys, "traffic", "show", "1001", *period, "--json")
    assert code == 0
    shown = json.loads(out)
    assert [(a["address"], a["rx_bytes"], a["tx_bytes"]) for a in shown["addresses"]] == [
        (A, 3700, 370), (C, 7, 7),
    ]  # fmt: skip
    assert shown["total_bytes"] == 3700 + 370 + 14 and len(shown["rows"]) == 3  # hours
    code, out, _ = billing(capsys, "traffic", "show", "1001", *period, "--by", "5min",
                           "--address", A, "--json")  # fmt: skip
    assert [r["rx_bytes"] for r in json.loads(out)["rows"]] == [1000, 2000, 500, 200]
    code, out, _ = billing(capsys, "traffic", "show", "1001", *period, "--by", "day")
    assert code == 0 and "total" in out and "3.7 kB" in out, out
    code, _, err = billing(capsys, "traffic", "show", "4242", *period)
    assert code == 66 and "no contract 4242" in one_line(err)
    code, _, err = billing(capsys, "traffic", "show", "1001", "--from", "5.12.2026")
    assert code == 64 and "--from: expected a date" in one_line(err)
    asyncio.run(_retention(database_url))


async def _scenario(url: str) -> None:
    await db.migrate(url, "traffic")
    pool = await db.create_pool(url, "traffic")
    clock = Clock(H10 + timedelta(minutes=2))
    traffic = Traffic(TrafficSettings(traffic_report_interval=300))
    consumer = BatchConsumer(
        "traffic", pool, clock,
        {ev.TrafficCounters: traffic.on_counters, ev.ContractUpserted: traffic.on_contract},
    )  # fmt: skip
    timers = TimerLoop("traffic", pool, clock, traffic.on_timer)
    offset = 0

    async def consume(*values: bytes, topic: str = TOPIC) -> None:
        nonlocal offset
        records = []
        for v in values:
            records.append(Record(topic, 0, offset, b"gw1", v, None))
            offset += 1
        await consumer.apply(records)

    try:
        await consume(contract("1002", B), topic="billing.contracts")
        first = counters("b1", 1, [(A, "1001", 1000, 100), (B, None, 10, 1)])
        await consume(first)
        await consume(first)  # redelivered: the inbox skips it
        # the same readings again under another event id (a gear's retry): not newer, nothing
        await consume(counters("b1", 1, [(A, "1001", 1000, 100)]))
        await consume(counters("b1", 31, [(A, "1001", 3000, 300), (B, None, 30, 3)]))
        # A's counter lower under the same boot (its element re-added): 500 since the reset
        await consume(counters("b1", 58, [(A, "1001", 500, 50)]))
        # a reordered older report: nothing
        await consume(counters("b1", 40, [(A, "1001", 9999, 9999)]))
        # the gear restarted: a new boot id, its counters from zero
        clock.at = H10 + timedelta(minutes=63)
        await consume(counters("b2", 62, [(A, "1001", 200, 20), (B, None, 5, 0)]))

        async with pool.acquire() as conn:
            hour = {
                (r["contract"], r["address"], r["start"]): (r["rx_bytes"], r["tx_bytes"])
                for r in await conn.fetch("SELECT * FROM traffic_hour")
            }
            assert hour == {
                ("1001", A, H10): (1000 + 2000 + 500, 100 + 200 + 50),
                ("1002", B, H10): (30, 3),
                ("1001", A, H10 + timedelta(hours=1)): (200, 20),
                ("1002", B, H10 + timedelta(hours=1)): (5, 0),
            }
            five = await conn.fetch(
                "SELECT start, rx_bytes FROM traffic_5min WHERE address = $1 ORDER BY start", A
            )
            assert [(r["start"].minute, r["rx_bytes"]) for r in five] == [
                (0, 1000), (30, 2000), (55, 500), (0, 200),
            ]  # fmt: skip
            day = await conn.fetchrow("SELECT * FROM traffic_day WHERE address = $1", A)
            assert (day["rx_bytes"], day["tx_bytes"]) == (3700, 370)

            # 11:03: hour 10 is not closed before 11:05 (its end + one report interval)
            await timers.sweep_once()  # the retention round only
            assert await hours_published(conn) == []
            clock.at = H10 + timedelta(minutes=66)
            await timers.sweep_once()
            published = await hours_published(conn)
            assert sorted((p["contract"], p["revision"]) for p in published) == [
                ("1001", 1), ("1002", 1),
            ]  # fmt: skip
            p1001 = next(p for p in published if p["contract"] == "1001")
            assert p1001["hour"].startswith("2026-12-05T10:00:00")
            assert p1001["addresses"] == [{"address": A, "rx_bytes": 3500, "tx_bytes": 350}]
            await timers.sweep_once()
            assert len(await hours_published(conn)) == 2  # once per hour

            # a late report of hour 10 (a new address of 1001) republishes 1001's hour whole
            clock.at = H10 + timedelta(minutes=70)
            await consume(counters("b2", 59.5, [(C, "1001", 7, 7)], gear="gw2"))
            await timers.sweep_once()
            published = await hours_published(conn)
            assert [(p["contract"], p["revision"]) for p in published[2:]] == [("1001", 2)]
            assert published[2]["addresses"] == [
                {"address": A, "rx_bytes": 3500, "tx_bytes": 350},
                {"address": C, "rx_bytes": 7, "tx_bytes": 7},
            ]
    finally:
        await pool.close()


async def _retention(url: str) -> None:
    """5-minute buckets go after 7 days, hours stay 90, days for ever."""
    pool = await db.create_pool(url, "traffic")
    clock = Clock(H10 + timedelta(days=8))
    timers = TimerLoop("traffic", pool, clock, Traffic(TrafficSettings()).on_timer)
    try:
        async with pool.acquire() as conn:
            clock.at = H10 + timedelta(days=8)
            await conn.execute("UPDATE timers SET due_at = $1 WHERE key = 'retention'", clock.at)
            await timers.sweep_once()
            assert await conn.fetchval("SELECT count(*) FROM traffic_5min") == 0
            assert await conn.fetchval("SELECT count(*) FROM traffic_hour") == 5
            clock.at = H10 + timedelta(days=91)
            await conn.execute("UPDATE timers SET due_at = $1 WHERE key = 'retention'", clock.at)
            await timers.sweep_once()
            assert await conn.fetchval("SELECT count(*) FROM traffic_hour") == 0
            assert await conn.fetchval("SELECT sum(rx_bytes) FROM traffic_day") == 3700 + 35 + 7
    finally:
        await pool.close()
