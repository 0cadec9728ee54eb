"""Horizontal scale for real: two instances of every worker share their consumer groups'
partitions (four a topic, two each); one instance of payments is SIGKILLed and not started
again, and the other takes over all of its partitions and applies every payment, with
nothing lost and nothing applied twice."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bench.chaos import Movement, contracts_file, gpc_statement
from services.devstack.demo import isolated_stack
from services.devstack.quiesce import Quiescence
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.clock import set_clock
from services.runtime.settings import Topics

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
N = 200


async def held(stack: Stack, name: str, topic: str) -> int:
    """The partitions of ``topic`` the worker instance ``name`` holds, by its metrics (-1
    while it is not serving them yet)."""
    url = f"http://127.0.0.1:{stack.metrics_port(name)}/metrics"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return -1
    found = re.search(
        rf'billing_partitions_assigned{{service="payments",topic="{re.escape(topic)}"}} (\S+)',
        text,
    )
    return int(float(found.group(1))) if found else 0


async def cli(stack: Stack, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, env=stack.env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def until(what: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.3)


async def contracts_billed(stack: Stack, conn: asyncpg.Connection, tmp: Path, n: int) -> None:
    """``n`` contracts loaded and billed for December (an invoice each), and the invoices
    known to payments."""
    path = tmp / "contracts.json"
    contracts_file(n, path)
    await cli(stack, "contracts", "load", str(path))
    await cli(stack, "invoicing", "run", "--period", "2026-12", "--issued-on", "2026-12-01")
    await until(
        "invoices known to payments",
        lambda: _count(conn, "SELECT count(*) FROM payments.invoices", n),
    )


async def story(stack: Stack, tmp: Path) -> None:
    conn = await db.connect(stack.database_url)
    try:
        from bench.chaos import START

        await set_clock(conn, START)
        topic = Topics().payments_received
        # both instances joined: four partitions, two each
        await until(
            "two payments instances holding two partitions each",
            lambda: _both(stack, topic),
        )
        await contracts_billed(stack, conn, tmp, N)

        assert stack.workers is not None
        stack.workers.kill("payments#2")  # SIGKILL, not started again
        rows = await conn.fetch("SELECT contract, ss, amount_minor FROM payments.invoices")
        movements = [
            Movement(i + 1, r["amount_minor"], r["contract"], r["ss"]) for i, r in enumerate(rows)
        ]
        statement = tmp / "statement.gpc"
        statement.write_bytes(gpc_statement(movements, START.date(), 1))
        await cli(stack, "import-statement", str(statement))

        # the survivor takes over all four partitions (after the session timeout) ...
        await until("payments holding all four partitions", lambda: _all(stack, topic))
        async with Quiescence(stack.settings(), Topics()) as q:
            await q.wait(conn, timeout=120)
        # ... and every payment is applied, once
        assert await conn.fetchval("SELECT count(*) FROM payments.bank_transactions") == N
        assert await conn.fetchval("SELECT count(*) FROM payments.invoices WHERE settled") == N
        assert await conn.fetchval("SELECT count(*) FROM payments.allocations") == N
        assert (
            await conn.fetchval("SELECT count(*) FROM invoicing.invoices WHERE status = 'paid'")
            == N
        )
        assert await conn.fetchval("SELECT count(*) FROM payments.dead_letters") == 0
    finally:
        await conn.close()


async def _both(stack: Stack, topic: str) -> bool:
    return [await held(stack, n, topic) for n in ("payments", "payments#2")] == [2, 2]


async def _all(stack: Stack, topic: str) -> bool:
    return await held(stack, "payments", topic) == 4


async def _count(conn: asyncpg.Connection, query: str, n: int) -> bool:
    return bool(await conn.fetchval(query) == n)


def test_the_other_instance_takes_over_a_killed_ones_partitions(
    database_url: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    stack = isolated_stack(run_dir, database_url)
    stack.cfg.instances = 2
    try:
        stack.start_infrastructure()
        stack.start_workers()
        asyncio.run(story(stack, tmp_path))
    finally:
        stack.stop()
        keep = ROOT / "artifacts" / "e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir / "logs", keep / tmp_path.name, dirs_exist_ok=True)
