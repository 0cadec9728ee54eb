"""``make bench``'s traffic scenario: 100,000 addresses' counters every 5 minutes.

Three consecutive reports of ``n`` addresses (parts of 5,000, as gear sends them) go through
the traffic service's ingest path: the handler (``Traffic.on_counters``) and its SQL, one
transaction per report as the consumer applies a batch, through the inbox-less handler
call (the inbox is one row per part). Each report's wall time and this process's CPU time,
next to a COPY of the same rows into a plain table in the same run. The outcome: the bytes
in the service's days equal the generated totals.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import events as ev
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.unit import Unit
from services.traffic.service import Traffic
from services.traffic.settings import TrafficSettings

START = datetime(2027, 1, 4, 10, 1, tzinfo=UTC)


def report(n: int, k: int) -> tuple[list[ev.TrafficCounters], int]:
    """Report ``k`` (0, 1, 2) of ``n`` addresses, and the bytes it adds (each address
    grows by its own amount a report; the first report counts whole)."""
    at = START + timedelta(minutes=5 * k)
    counters = [
        ev.AddressCounter(
            address=f"100.{64 + i // 65536}.{i // 256 % 256}.{i % 256}",
            contract=str(100000 + i // 2),
            rx_bytes=(k + 1) * (1000 + i),
            tx_bytes=(k + 1) * (100 + i % 1000),
        )
        for i in range(n)
    ]
    parts = [counters[i : i + 5000] for i in range(0, n, 5000)]
    rid = uuid.uuid4().hex
    events = [
        ev.TrafficCounters(
            gear="bench", boot_id="b1", report_id=rid, part=j + 1, parts=len(parts),
            collected_at=at, counters=part,
        )
        for j, part in enumerate(parts)
    ]  # fmt: skip
    added = sum((1000 + i) + (100 + i % 1000) for i in range(n))
    return events, added


async def traffic_ingest(url: str, n: int) -> list[dict[str, Any]]:
    await db.migrate(url, "traffic")
    conn = await db.connect(url, "traffic")
    traffic = Traffic(TrafficSettings())
    timings: list[tuple[float, float]] = []
    expected = 0
    try:
        await conn.execute("TRUNCATE readings, traffic_5min, traffic_hour, traffic_day, hours")
        for k in range(3):
            events, added = report(n, k)
            expected += added
            wall, cpu = time.perf_counter(), time.process_time()
            async with conn.transaction():
                unit = Unit(conn, START + timedelta(minutes=5 * k, seconds=2), "/bench")
                await traffic.on_counters(unit, Run([None] * len(events), events))  # type: ignore[list-item]
                await unit.flush()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            timings.append((wall, cpu))
        summed = await conn.fetchval("SELECT sum(rx_bytes + tx_bytes) FROM traffic_day")
        five = await conn.fetchval("SELECT sum(rx_bytes + tx_bytes) FROM traffic_5min")
        rows = [(f"a{i}", "c", START, 1000 + i, 100 + i) for i in range(n)]
        await conn.execute(
            "CREATE TABLE copy_traffic (contract text, address text, start timestamptz,"
            " rx_bytes bigint, tx_bytes bigint)"
        )
        copy = time.perf_counter()
        await conn.copy_records_to_table("copy_traffic", records=rows)
        copy = time.perf_counter() - copy
        await conn.execute("DROP TABLE copy_traffic")
    finally:
        await conn.close()
    ok = summed == expected and five == expected
    out: list[dict[str, Any]] = []
    for k, (took, used) in enumerate(timings):
        out.append(
            {
                "scenario": f"traffic-report-{k + 1}", "n": n, "seconds": round(took, 2),
                "cpu_seconds": round(used, 2), "throughput": round(n / took),
                "unit": "addresses/s", "copy_seconds": round(copy, 2),
                "ratio": round(took / copy, 1), "target": "<= 30 s (a tenth of 5 minutes)",
                "target_met": took <= 30, "outcome_ok": ok,
            }
        )  # fmt: skip
    return out
