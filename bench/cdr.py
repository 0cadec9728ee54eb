"""The CDR scenario of ``make bench`` (issue 31 item 6): a generated Asterisk ``Master.csv``
of N calls imported and rated (``billing voip import``'s path: parse, rate, COPY, insert
once, events to the outbox, prepaid credit), wall and CPU time, next to a COPY of the same
rows into a plain table in the same run. The outcome is checked: the calls recorded and
their price sum equal what the generator computed on its own (not through the price list).

Run alone: ``python -m bench.cdr N DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.runtime import db
from services.voip import importer
from services.voip.settings import VoipSettings

CONTRACTS = 1000
PREPAID_EVERY = 10  # every tenth contract's calls are deducted from credit
PRICES = (
    "prefix,destination,currency,price_per_minute,increments,setup_fee,valid_from,valid_to\n"
    "420,CZ fixed,CZK,0.60,60/60,0,2026-01-01,\n"
    "4206,CZ mobile,CZK,1.20,1/1,0,2026-01-01,\n"
)
DAY = datetime(2026, 12, 1, 8, 0)


def master_csv(n: int) -> tuple[bytes, int]:
    """``n`` answered calls (and the price sum the rules give, computed here by hand:
    fixed 0.60/min per started minute, mobile 0.02 a second)."""
    lines, total = [], 0
    for i in range(n):
        seconds = 1 + i % 300
        if i % 2:
            dst, total = f"60{i % 10_000_000:07d}", total + 2 * seconds
        else:
            dst, total = f"+4202{i % 10_000_000:07d}", total + 60 * -(-seconds // 60)
        start = (DAY + timedelta(seconds=i % 80_000)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f'"{100000 + i % CONTRACTS}","601000001","{dst}","from-internal","",'
            f'"SIP/p-{i:08x}","SIP/trunk-1","Dial","","{start}","{start}","{start}",'
            f'{seconds + 3},{seconds},"ANSWERED","DOCUMENTATION","1733000000.{i}",""\n'
        )
    return "".join(lines).encode(), total


async def scenario(url: str, n: int, tmp: Path) -> dict[str, Any]:
    prices = tmp / "bench-prices.csv"
    prices.write_text(PRICES)
    settings = VoipSettings(database_url=url, voip_price_list=prices)
    data, expected_sum = master_csv(n)
    await db.migrate(url, importer.SCHEMA)
    conn = await db.connect(url, importer.SCHEMA)
    try:
        await conn.executemany(
            "INSERT INTO contracts (contract, currency, prepaid) VALUES ($1, 'CZK', $2)"
            " ON CONFLICT (contract) DO NOTHING",
            [(str(100000 + c), c % PREPAID_EVERY == 0) for c in range(CONTRACTS)],
        )
        wall, cpu = time.perf_counter(), time.process_time()
        report = await importer.import_file(settings, data, "bench-Master.csv")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        count, total = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(price_minor), 0) FROM calls WHERE import_id = $1",
            report.import_id,
        )
        rows = await conn.fetch("SELECT * FROM calls WHERE import_id = $1", report.import_id)
        await conn.execute("CREATE TABLE copy_cdr (LIKE calls INCLUDING ALL)")
        copy_started = time.perf_counter()
        await conn.copy_records_to_table("copy_cdr", records=[tuple(r) for r in rows])
        copy_seconds = time.perf_counter() - copy_started
        await conn.execute("DROP TABLE copy_cdr")
    finally:
        await conn.close()
    ok = count == n and total == expected_sum and report.rated == n and not report.refused
    return {
        "scenario": "cdr-import-rate",
        "n": n,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "throughput": round(n / wall),
        "unit": "calls/s",
        "copy_seconds": round(copy_seconds, 2),
        "ratio": round(wall / copy_seconds, 1),
        "events": report.events,
        "target": "measured (issue 31)",
        "target_met": True,
        "outcome_ok": ok,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    result = asyncio.run(scenario(sys.argv[2], int(sys.argv[1]), Path("/tmp")))
    print(result)
