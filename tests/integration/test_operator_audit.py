"""The operators' audit trail and the CLI's answers about contracts it does not know.

Against the real PostgreSQL, through ``billing ...`` as an operator types it: exempting and
lifting keep the exemption's history and leave two rows in the trail, the trail refuses
UPDATE, DELETE and TRUNCATE, ``billing audit log`` shows it (text and JSON), a payment
paired by hand and a contracts file loaded are in it (a refused file leaves nothing), and
an unknown contract is a one-line error with a non-zero exit wherever an operator names
one (issue 27 items 15 and 16)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.cli import main as billing
from services.runtime import audit, db
from services.runtime.clock import set_clock
from services.runtime.settings import get_settings

NOW = datetime(2026, 12, 19, 9, 0, tzinfo=UTC)  # the test clock's: it runs on from here


def minute(t: datetime | str) -> datetime:
    """The clock's time to the minute (it ran on a few milliseconds)."""
    t = datetime.fromisoformat(t) if isinstance(t, str) else t
    return t.replace(second=0, microsecond=0)


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database on the test clock, the CLI pointed at it."""

    async def setup() -> None:
        for service in ("invoicing", "payments", "dunning", "notify"):
            await db.migrate(database_url, service)
        conn = await db.connect(database_url, "dunning")
        try:
            await set_clock(conn, NOW)
            await conn.execute(
                "INSERT INTO contracts (contract, country, currency) VALUES ('1008', 'CZ', 'CZK')"
            )
        finally:
            await conn.close()

    asyncio.run(setup())
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_TEST_CLOCK", "true")
    monkeypatch.delenv(audit.OPERATOR_ENV, raising=False)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def fetch(url: str, schema: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await db.connect(url, schema)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def fails(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 65) -> str:
    """The command exits with ``code`` (65 bad input, 66 not found) and one line on stderr,
    no traceback; that line."""
    with pytest.raises(SystemExit) as exit_:
        billing(list(argv))
    assert exit_.value.code == code
    out = capsys.readouterr()
    assert out.out == "" and "Traceback" not in out.err
    assert out.err.count("\n") == 1, out.err
    return out.err.strip()


def test_exempt_then_lift_keeps_the_exemption_and_the_trail(
    cli: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    billing(["dunning", "exempt", "1008", "--reason", "a school", "--operator", "alice"])
    monkeypatch.setenv(audit.OPERATOR_ENV, "bob")  # no --operator: the environment's
    billing(["dunning", "exempt", "1008", "--lift", "--reason", "the term is over"])
    assert capsys.readouterr().out.splitlines() == [
        "contract 1008: exempt",
        "contract 1008: exemption lifted",
    ]
    rows = fetch(cli, "dunning", "SELECT * FROM exemptions ORDER BY id")
    assert [
        (r["reason"], r["by"], minute(r["since"]), minute(r["lifted_at"]), r["lifted_by"])
        for r in rows
    ] == [("a school", "alice", NOW, NOW, "bob")]
    assert rows[0]["lift_reason"] == "the term is over"
    trail = fetch(cli, "dunning", "SELECT * FROM operator_actions ORDER BY id")
    assert [
        (r["operator"], r["action"], r["contract"], r["reason"], minute(r["at"])) for r in trail
    ] == [
        ("alice", "exempt", "1008", "a school", NOW),
        ("bob", "lift-exemption", "1008", "the term is over", NOW),
    ]
    details = trail[1]["details"]
    assert (details["previous_reason"], details["previous_by"]) == ("a school", "alice")
    assert details["previous_since"] == rows[0]["since"].isoformat()
    # the history shows in explain, and the contract is no longer exempt
    billing(["dunning", "explain", "1008"])
    out = capsys.readouterr().out
    assert "(exempt)" not in out.splitlines()[0]
    assert "exempted by alice: a school" in out
    assert "exemption lifted by bob: the term is over" in out
    # lifting again: nothing to lift, said as an error; nothing recorded
    assert "no operator's exemption to lift" in fails(capsys, "dunning", "exempt", "1008", "--lift")
    assert len(fetch(cli, "dunning", "SELECT id FROM operator_actions")) == 2


def test_audit_log_shows_the_trail_as_text_and_json(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    billing(["audit", "log"])
    assert capsys.readouterr().out == "no operator actions recorded\n"
    billing(["dunning", "exempt", "1008", "--reason", "a hospital", "--operator", "alice"])
    billing(["dunning", "postpone", "1008", "--until", "2027-01-20", "--reason", "pays on 20th",
             "--operator", "carol"])  # fmt: skip
    capsys.readouterr()
    billing(["audit", "log", "1008"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["at", "(UTC)", "operator", "action", "contract", "service"]
    assert lines[1].startswith("2026-12-19 09:00:")
    assert lines[1][19:].startswith("  alice        exempt           1008")
    assert "dunning      a hospital; {}" in lines[1]
    assert "carol        postpone" in lines[2] and "pays on 20th" in lines[2]
    assert '"until": "2027-01-20T00:00:00+00:00"' in lines[2]  # the clock's zone: UTC
    billing(["audit", "log", "1008", "--json"])
    entries = json.loads(capsys.readouterr().out)
    assert [(e["operator"], e["action"], e["service"]) for e in entries] == [
        ("alice", "exempt", "dunning"), ("carol", "postpone", "dunning")
    ]  # fmt: skip
    assert minute(entries[0]["at"]) == NOW and entries[0]["reason"] == "a hospital"
    billing(["audit", "log", "7777"])
    assert capsys.readouterr().out == "no operator actions recorded for contract 7777\n"


def test_the_trail_refuses_update_delete_and_truncate(cli: str) -> None:
    async def go() -> None:
        conn = await db.connect(cli, "payments")
        try:
            with pytest.raises(RuntimeError, match="outside its transaction"):
                await audit.record(conn, NOW, "alice", "exempt", "1008")
            async with conn.transaction():
                await audit.record(conn, NOW, "alice", "exempt", "1008", {"a": 1}, "why")
            for statement in (
                "UPDATE operator_actions SET operator = 'mallory'",
                "DELETE FROM operator_actions",
                "TRUNCATE operator_actions",
            ):
                with pytest.raises(
                    asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"
                ):
                    await conn.execute(statement)
            rows = await conn.fetch("SELECT operator, details, reason FROM operator_actions")
            assert [tuple(r) for r in rows] == [("alice", {"a": 1}, "why")]
        finally:
            await conn.close()

    asyncio.run(go())


def test_unknown_contracts_are_one_line_errors(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """postpone printed a traceback, exempt reported success, notify log printed nothing."""
    assert (
        fails(
            capsys, "dunning", "postpone", "9999", "--until", "2027-01-10", "--reason", "x", code=66
        )
        == "billing: no contract 9999 known to dunning"
    )
    assert (
        fails(capsys, "dunning", "exempt", "9999", "--reason", "x", code=66)
        == "billing: no contract 9999 known to dunning"
    )
    assert (
        fails(capsys, "notify", "log", "9999", code=66)
        == "billing: no contract 9999 known to notify"
    )
    assert fetch(cli, "dunning", "SELECT * FROM exemptions") == []
    assert fetch(cli, "dunning", "SELECT * FROM operator_actions") == []
    assert fetch(cli, "dunning", "SELECT * FROM promises") == []


def test_notify_log_says_none_or_prints_a_table(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def contacts(extra: str | None) -> None:
        conn = await db.connect(cli, "notify")
        try:
            if extra is None:
                await conn.execute(
                    "INSERT INTO contacts (contract, customer_name, language, contacts)"
                    " VALUES ('1008', 'Jan', 'cs', '[]')"
                )
            else:
                await conn.execute(
                    "INSERT INTO deliveries (contract, request_id, kind, channel, recipient,"
                    " language, subject, body, next_attempt_at, created_at, status, attempts,"
                    " last_error, failure_reason) VALUES ('1008', '1008:r1', 'reminder',"
                    " 'email', $1, 'cs', 's', 'b', $2, $2, 'failed', 1, 'bad', 'header-injection')",
                    extra,
                    NOW,
                )
        finally:
            await conn.close()

    asyncio.run(contacts(None))
    billing(["notify", "log", "1008"])
    assert capsys.readouterr().out == "no notifications for contract 1008\n"
    asyncio.run(contacts("a@example.com\r\nBcc: b@example.com"))
    billing(["notify", "log", "1008"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "created", "kind", "chan", "recipient", "status", "tries", "why"
    ]  # fmt: skip
    assert len(lines) == 2  # the CR/LF in the address does not break the line
    assert "'a@example.com\\r\\nBcc: b@example.com'" in lines[1]
    assert lines[1].endswith("failed      1  header-injection: bad")


def test_notify_preview_knows_every_kind_with_templates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services.notify import templates

    root = Path(templates.__file__).with_name("templates")
    kinds = sorted({p.name.split(".")[0] for p in root.glob("*.txt")})
    assert "restrict" in kinds
    for kind in kinds:
        billing(["notify", "preview", kind, "--part", "text"])
        assert capsys.readouterr().out.startswith("Subject: ")


def test_contracts_load_and_a_manual_assignment_are_in_the_trail(
    cli: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    demo = Path(__file__).parents[2] / "services" / "devstack" / "demo_data" / "contracts.json"
    billing(["contracts", "load", str(demo), "--operator", "dana"])
    assert capsys.readouterr().out == "3 contracts read, 3 new or changed\n"
    bad = tmp_path / "bad.json"
    bad.write_text(demo.read_text().replace("alena@example.com", "alena@example.com\\r\\n"))
    assert "field 'contacts[0].email' of contract 1001" in fails(
        capsys, "contracts", "load", str(bad)
    )
    rows = fetch(
        cli, "invoicing", "SELECT operator, action, contract, details FROM operator_actions"
    )
    assert [(r["operator"], r["action"], r["contract"]) for r in rows] == [
        ("dana", "contracts-load", None)
    ]
    assert rows[0]["details"] == {"file": str(demo.resolve()), "read": 3, "changed": 3}

    from tests.integration.test_payments_service import harness, pay

    async def unmatched() -> None:
        h, conn = await harness(cli)
        try:
            assert await h.receive(pay("u1", 49900, payer="123-456/0100")) == [
                "payment.unmatched.v1"
            ]
        finally:
            await conn.close()

    asyncio.run(unmatched())
    capsys.readouterr()
    billing(["payments", "assign", "2001234561/2010", "u1", "--contract", "1001",
             "--operator", "erik", "--note", "phoned in"])  # fmt: skip
    assert "assigned to contract 1001" in capsys.readouterr().out
    [row] = fetch(cli, "payments", "SELECT * FROM operator_actions")
    assert (row["operator"], row["action"], row["contract"], row["reason"]) == (
        "erik", "assign-payment", "1001", "phoned in"
    )  # fmt: skip
    assert row["details"]["bank_tx_id"] == "u1" and row["details"]["credit_minor"] == 49900
    billing(["audit", "log"])
    out = capsys.readouterr().out
    assert "dana         contracts-load   -" in out and "erik         assign-payment   1001" in out


def test_a_statement_import_is_in_the_trail_with_its_record(
    cli: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded in the transaction that records the movements: a cluster that does not
    answer (a socket that never replies) leaves both, and the import's one-line error."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    monkeypatch.setenv("BILLING_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("BILLING_KAFKA_CONNECT_TIMEOUT", "1")
    get_settings.cache_clear()
    statement = Path(__file__).parents[1] / "fixtures" / "statements" / "kb.gpc"
    try:
        assert "6 new movements recorded" in fails(
            capsys, "import-statement", str(statement), "--operator", "frank", code=69
        )
    finally:
        silent.close()
    [row] = fetch(
        cli, "bank_import", "SELECT operator, action, contract, details FROM operator_actions"
    )
    assert (row["operator"], row["action"], row["contract"]) == ("frank", "import-statement", None)
    assert row["details"] == {"file": "kb.gpc", "format": "auto", "movements": 6, "new": 6}


def test_a_billing_run_is_in_the_trail_when_started_and_with_its_result(
    cli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = Path(__file__).parents[2] / "services" / "devstack" / "demo_data" / "contracts.json"
    billing(["contracts", "load", str(demo), "--operator", "dana"])
    billing(["invoicing", "run", "--period", "2027-01", "--operator", "olga"])
    assert capsys.readouterr().out.splitlines()[-1] == "3 invoices issued for 2027-01"
    rows = fetch(
        cli, "invoicing", "SELECT operator, action, details FROM operator_actions ORDER BY id"
    )
    asked = {"period": "2027-01", "issued_on": NOW.date().isoformat()}
    assert [(r["operator"], r["action"], r["details"]) for r in rows[1:]] == [
        ("olga", "billing-run-started", asked),
        ("olga", "billing-run", {**asked, "issued": 3}),
    ]
