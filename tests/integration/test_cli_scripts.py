"""What a script can rely on from ``billing``: an exit code per kind of failure
(services/runtime/errors.py) with one line on stderr and no traceback, ``--json`` on the
commands that read, and a progress line on stderr only when it is a terminal."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bench.run import contracts_json
from services import cli
from services.invoicing import cli as invoicing_cli
from services.runtime import db
from services.runtime.settings import get_settings
from services.workers import SERVICES
from tests.integration.test_dunning_scenarios import Sim, at
from tests.integration.test_dunning_scenarios import run as dunning_run
from tests.integration.test_payments_service import harness, pay

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "statements"


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database named by BILLING_DATABASE_URL, for in-process commands."""

    async def migrate() -> None:
        for service in (*SERVICES, "bank_import"):
            await db.migrate(database_url, service)

    asyncio.run(migrate())
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_TEST_CLOCK", "true")
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def billing(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run one command in this process: (exit code, stdout, stderr)."""
    get_settings.cache_clear()
    try:
        cli.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("billing: "), err
    assert "Traceback" not in err
    return lines[0]


# --- exit codes ------------------------------------------------------------------------


def test_each_kind_of_failure_has_its_exit_code_and_one_line(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = billing(capsys, "invoices", "--no-such-option")
    assert code == 64 and "unrecognized arguments: --no-such-option" in err  # usage

    code, _, err = billing(capsys, "import-statement", str(FIX / "broken.gpc"))
    assert code == 65  # bad input: the file, its line and field
    assert "broken.gpc:3: amount" in one_line(err)
    code, _, err = billing(capsys, "payment", "publish", "--amount", "1e5")
    assert code == 65 and "amount must look like 499.00" in one_line(err)

    code, _, err = billing(capsys, "import-statement", str(FIX / "no-such.gpc"))
    assert code == 66 and "no-such.gpc: No such file or directory" in one_line(err)
    code, _, err = billing(capsys, "dunning", "explain", "4242")
    assert code == 66 and "dunning knows no contract 4242" in one_line(err)
    code, _, err = billing(capsys, "payments", "show", "2001234561/2010", "nope")
    assert code == 66 and "no bank movement nope" in one_line(err)

    monkeypatch.setenv("BILLING_BATCH_SIZE", "many")
    code, _, err = billing(capsys, "invoices")
    assert code == 78 and "BILLING_BATCH_SIZE" in one_line(err)  # bad configuration
    monkeypatch.delenv("BILLING_BATCH_SIZE")
    monkeypatch.setenv("BILLING_TEST_CLOCK", "false")
    code, _, err = billing(capsys, "clock", "show")
    assert code == 78 and "the test clock is off" in one_line(err)

    # unavailable: nothing listens at the database's address (a stopped server)
    monkeypatch.setenv("BILLING_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/billing")
    code, _, err = billing(capsys, "invoices")
    assert code == 69
    assert "PostgreSQL at 127.0.0.1:9, database billing is not reachable" in one_line(err)
    # a socket directory where no server runs (the embedded server stopped)
    monkeypatch.setenv("BILLING_DATABASE_URL", f"postgresql://postgres@/billing?host={ROOT}")
    code, _, err = billing(capsys, "dunning", "preview", "--on", "2026-12-01")
    assert code == 69 and "is not reachable" in one_line(err)


def test_a_cluster_that_does_not_answer_exits_69(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("BILLING_KAFKA_CONNECT_TIMEOUT", "2")
    code, _, err = billing(capsys, "payment", "publish", "--amount", "499.00", "--vs", "1001")
    assert code == 69 and "Kafka at 127.0.0.1:9 is not reachable" in one_line(err)


def test_a_bug_exits_70_naming_debug_and_debug_shows_the_traceback(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(invoicing_cli, "cmd_invoices", broken)
    code, _, err = billing(capsys, "invoices")
    assert code == 70
    assert one_line(err) == (
        "billing: internal error: ZeroDivisionError: division by zero"
        " (run again with --debug for the traceback)"
    )
    code, _, err = billing(capsys, "invoices", "--debug")
    assert code == 70 and "Traceback (most recent call last)" in err and "broken" in err


def test_ctrl_c_exits_130_without_a_traceback(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(invoicing_cli, "cmd_invoices", interrupted)
    code, _, err = billing(capsys, "invoices")
    assert code == 130 and one_line(err) == "billing: interrupted"


# --- --json, one test per family of commands that read ---------------------------------


def test_invoices_json(env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    contracts_json(3, tmp_path / "contracts.json")
    assert billing(capsys, "contracts", "load", str(tmp_path / "contracts.json"))[0] == 0
    assert billing(capsys, "invoicing", "run", "--period", "2026-12")[0] == 0
    code, out, _ = billing(capsys, "invoices", "--json")
    invoices = json.loads(out)
    assert code == 0 and len(invoices) == 3
    assert {i["contract"] for i in invoices} == {"100000", "100001", "100002"}
    assert all(i["amount_minor"] == 49900 and i["status"] == "issued" for i in invoices)
    date.fromisoformat(invoices[0]["due_on"])  # dates as ISO 8601
    code, out, _ = billing(capsys, "invoices", "--contract", "100001", "--json")
    assert [i["contract"] for i in json.loads(out)] == ["100001"]


def test_payments_json(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def unmatched() -> None:
        h, conn = await harness(env)
        try:
            await h.receive(pay("u1", 49900, vs="777", payer="123-456/0100"))
        finally:
            await conn.close()

    asyncio.run(unmatched())
    code, out, _ = billing(capsys, "payments", "unmatched", "--json")
    (row,) = json.loads(out)
    assert code == 0 and (row["bank_tx_id"], row["amount_minor"], row["vs"]) == ("u1", 49900, "777")
    code, out, _ = billing(capsys, "payments", "show", row["account"], "u1", "--json")
    assert code == 0 and json.loads(out)["bank_tx_id"] == "u1"


def test_clock_json(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = billing(capsys, "clock", "set", "2026-12-24T10:00:00+00:00", "--json")
    assert code == 0 and json.loads(out) == {"now": "2026-12-24T10:00:00+00:00"}
    code, out, _ = billing(capsys, "clock", "show", "--json")
    assert json.loads(out)["now"].startswith("2026-12-24T10:0")


def test_dunning_json(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario(s: Sim) -> None:
        await s.contract("1010")
        await s.invoice("1010", "2026001010", date(2026, 12, 15))
        await s.run_until(at("2026-12-19"))

    dunning_run(env, scenario)
    billing(capsys, "clock", "set", "2026-12-19T09:00:00+00:00")
    code, out, _ = billing(capsys, "dunning", "preview", "--on", "2026-12-22", "--json")
    preview = json.loads(out)
    assert code == 0 and preview["on"] == "2026-12-22"
    assert {"contract": "1010", "kind": "reminder", "step": "reminder-2",
            "policy": "notice-then-suspend"} in preview["actions"]  # fmt: skip
    code, out, _ = billing(capsys, "dunning", "explain", "1010", "--json")
    explained = json.loads(out)
    assert code == 0 and explained["contract"] == "1010"
    assert explained["policy"] == "notice-then-suspend"
    assert [t["request_id"] for t in explained["timeline"]] == ["reminder-1@2026001010"]
    assert {u["action"] for u in explained["upcoming"]} >= {"notice"}


def test_notify_json(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def delivered() -> None:
        conn = await db.connect(env, "notify")
        try:
            await conn.execute(
                """INSERT INTO deliveries (contract, request_id, kind, channel, recipient,
                       language, subject, body, status, attempts, next_attempt_at, created_at)
                   VALUES ('1001', 'reminder-1@1', 'reminder', 'email', 'jan@example.test',
                           'cs', 's', 'b', 'sent', 1, now(), now())"""
            )
        finally:
            await conn.close()

    asyncio.run(delivered())
    code, out, _ = billing(capsys, "notify", "log", "1001", "--json")
    (row,) = json.loads(out)
    assert code == 0 and (row["kind"], row["recipient"], row["status"]) == (
        "reminder", "jan@example.test", "sent",
    )  # fmt: skip
    code, out, _ = billing(capsys, "notify", "preview", "reminder", "--lang", "en", "--json")
    message = json.loads(out)
    assert code == 0 and message["language"] == "en" and "VS 1001" in message["sms"]
    assert set(message) == {"kind", "language", "subject", "text", "html", "sms"}


# --- progress ----------------------------------------------------------------------------


def _load(env_url: str, file: Path, stderr: int | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BILLING_DATABASE_URL": env_url, "BILLING_TEST_CLOCK": "true"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "contracts", "load", str(file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
    )


def test_progress_on_a_terminal_only(env: str, tmp_path: Path) -> None:
    """The same long command (a contracts load of 12,000, three chunks) with stderr on a
    pseudo-terminal shows a progress line rewritten in place; with stderr on a pipe, its
    stderr stays empty and stdout has the result alone."""
    file = tmp_path / "contracts.json"
    contracts_json(12_000, file)

    master, slave = pty.openpty()
    proc = _load(env, file, slave)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "no output from the load on the terminal"
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the command exited
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read() if proc.stdout else b""
    assert proc.wait(timeout=60) == 0
    os.close(master)
    text = seen.decode()
    assert "\rcontracts loaded: " in text and "12,000" in text, text
    assert b"12000 contracts read" in out

    proc = _load(env, file, None)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert err == b"" and out.decode().strip() == "12000 contracts read, 0 new or changed"
