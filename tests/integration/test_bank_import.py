"""Importing statements for real: PostgreSQL dedupe, the outbox, a Tansu broker, and the
Fio API client against a local HTTP server that enforces Fio's rate limit."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer

from services.bank_import import fio_api, importer
from services.bank_import.formats import parse_statement
from services.cli import main as billing
from services.devstack.stack import create_topics, free_port
from services.runtime import db
from services.runtime.settings import Settings, Topics, get_settings, get_topics

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "statements"


async def _consume(bootstrap: str, topic: str, expect: int) -> list[tuple[bytes, dict]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[tuple[bytes, dict]] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                got += [(r.key, json.loads(r.value)) for r in records]
            if len(got) >= expect:
                await asyncio.sleep(0.5)  # and nothing more arrives
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got += [(r.key, json.loads(r.value)) for r in records]
                break
    finally:
        await consumer.stop()
    return got


def test_import_publishes_once_and_recovers_an_interrupted_run(
    database_url: str, broker: str
) -> None:
    settings = Settings(database_url=database_url, kafka_bootstrap_servers=broker)
    topic = Topics().payments_received
    asyncio.run(create_topics(settings, Topics()))
    kb = parse_statement((FIX / "kb.gpc").read_bytes(), "kb.gpc")

    first = asyncio.run(importer.import_movements(settings, kb, "kb.gpc", "gpc"))
    assert (first.parsed, first.new, first.published) == (6, 6, 6)
    again = asyncio.run(importer.import_movements(settings, kb, "kb.gpc", "gpc"))
    assert (again.new, again.published) == (0, 0)

    # An overlapping statement: one old movement and one new one.
    camt = parse_statement((FIX / "camt053_sk.xml").read_bytes(), "sk.xml")
    overlap = asyncio.run(importer.import_movements(settings, [kb[0], *camt], "x", "mixed"))
    assert (overlap.new, overlap.already) == (1, 1)

    # Crash between commit and publish: the outbox keeps the event for the next run.
    tatra = parse_statement((FIX / "tatra.sta").read_bytes(), "tatra.sta")

    async def interrupted() -> None:
        await db.migrate(database_url, importer.SCHEMA)
        conn = await db.connect(database_url, importer.SCHEMA)
        try:
            async with conn.transaction():
                await importer.record(conn, tatra, "tatra.sta", "mt940", datetime.now(UTC))
        finally:
            await conn.close()

    asyncio.run(interrupted())
    later = asyncio.run(importer.import_movements(settings, [], "empty", "gpc"))
    assert later.published == 2

    got = asyncio.run(_consume(broker, topic, 9))
    assert len(got) == 9  # 6 + 1 + 2, each once
    by_tx = {v["data"]["bank_tx_id"]: (k, v) for k, v in got}
    key, event = by_tx["3001"]
    assert key == b"1001" and event["type"] == "payment.received.v1"
    assert event["data"] == kb[0].model_dump(mode="json")
    assert by_tx["3003"][0] == b"3003"  # no VS: keyed by the movement id


def test_cli_dry_run_prints_exactly_the_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    billing(["import-statement", str(FIX / "camt053_cz.xml"), "--dry-run"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    fields = set(json.loads(lines[0]))
    assert fields == {
        "account",
        "bank_tx_id",
        "booked_on",
        "value_on",
        "amount_minor",
        "currency",
        "vs",
        "ss",
        "ks",
        "counterparty_account",
        "counterparty_name",
        "message",
    }


def test_cli_rejects_a_broken_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        billing(["import-statement", str(FIX / "broken.gpc")])
    assert exc.value.code == 65  # bad input (services/runtime/errors.py)
    err = capsys.readouterr().err
    assert "broken.gpc:3: amount (positions 49-60)" in err and "nothing imported" in err


def test_fio_client_waits_for_the_rate_limit(database_url: str) -> None:
    asyncio.run(_fio(database_url))


async def _fio(url: str) -> None:
    interval = 0.6
    seen: list[float] = []
    refused = 0

    async def periods(request: web.Request) -> web.Response:
        nonlocal refused
        now = time.monotonic()
        if seen and now - seen[-1] < interval:
            refused += 1
            return web.Response(status=409, text="too many requests")
        seen.append(now)
        if len(seen) == 1:  # the first answer is a 409 from "someone else" using the token
            return web.Response(status=409)
        assert request.match_info["token"] == "tok"
        return web.json_response(
            {
                "accountStatement": {
                    "info": {"accountId": "2001234561", "bankId": "2010", "currency": "CZK"},
                    "transactionList": {
                        "transaction": [
                            {
                                "column22": {"value": 42, "name": "ID pohybu", "id": 22},
                                "column0": {"value": "2026-11-16+0100"},
                                "column1": {"value": 499.0},
                                "column14": {"value": "CZK"},
                                "column5": {"value": "1001"},
                            }
                        ]
                    },
                }
            }
        )

    app = web.Application()
    app.router.add_get("/v1/rest/periods/{token}/{start}/{end}/transactions.json", periods)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await db.migrate(url, importer.SCHEMA)
    pool = await db.create_pool(url, importer.SCHEMA, max_size=2)
    try:
        client = fio_api.FioClient(
            "tok", pool, f"http://127.0.0.1:{port}/v1/rest", min_interval=interval
        )
        body = await client.period(date(2026, 11, 1), date(2026, 11, 16))
        [m] = parse_statement(body, "fio.json", "fio-json")
        assert (m.bank_tx_id, m.amount_minor, m.vs) == ("42", 49900, "1001")
        # a second client (another process) shares the limit through PostgreSQL
        other = fio_api.FioClient(
            "tok", pool, f"http://127.0.0.1:{port}/v1/rest", min_interval=interval
        )
        await other.period(date(2026, 11, 1), date(2026, 11, 16))
        assert refused == 0 and len(seen) == 3
        assert all(b - a >= interval * 0.95 for a, b in itertools.pairwise(seen))
        with pytest.raises(fio_api.FioError, match="before"):
            await other.period(date(2026, 11, 16), date(2026, 11, 1))
    finally:
        await pool.close()
        await runner.cleanup()


def test_a_cluster_that_does_not_answer_loses_nothing_and_is_named(
    database_url: str,
    broker: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A socket that takes the connection and never answers stands for a cluster without a
    quorum: the import records the statement, says within the timeout that its events wait
    in the outbox, and the next import publishes them once."""
    monkeypatch.setenv("BILLING_TOPIC_PAYMENTS_RECEIVED", "payments.received.silent")
    get_topics.cache_clear()
    try:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        down = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = Settings(
            database_url=database_url, kafka_bootstrap_servers=down, kafka_connect_timeout=1.5
        )
        kb = parse_statement((FIX / "kb.gpc").read_bytes(), "kb.gpc")
        started = time.monotonic()
        with pytest.raises(importer.NotPublished) as refused:
            asyncio.run(importer.import_movements(settings, kb, "kb.gpc", "gpc"))
        assert time.monotonic() - started < 10
        message = str(refused.value)
        assert "kb.gpc: 6 new movements recorded, 6 events wait" in message
        assert f"Kafka at {down} is not reachable (no answer within 1.5 s" in message

        # The CLI says the same in one line, no traceback.
        monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
        monkeypatch.setenv("BILLING_KAFKA_BOOTSTRAP_SERVERS", down)
        monkeypatch.setenv("BILLING_KAFKA_CONNECT_TIMEOUT", "1.5")
        get_settings.cache_clear()
        with pytest.raises(SystemExit) as exc:
            billing(["import-statement", str(FIX / "kb.gpc")])
        assert exc.value.code == 69  # unavailable: import again once Kafka answers
        err = capsys.readouterr().err
        # the six movements and the CLI's announcement of the statement it imported
        assert err.startswith("billing: kb.gpc: 0 new movements recorded, 7 events wait")
        assert "Traceback" not in err
        silent.close()

        up = Settings(database_url=database_url, kafka_bootstrap_servers=broker)
        asyncio.run(create_topics(up, Topics()))
        again = asyncio.run(importer.import_movements(up, kb, "kb.gpc", "gpc"))
        assert (again.new, again.published) == (0, 7)
        got = asyncio.run(_consume(broker, "payments.received.silent", 7))
        moved = [v for _, v in got if v["type"] == "payment.received.v1"]
        assert sorted(v["data"]["bank_tx_id"] for v in moved) == sorted(m.bank_tx_id for m in kb)
        [(key, announced)] = [(k, v) for k, v in got if v["type"] == "bank_statement.imported.v1"]
        assert key == b"2001234561" and announced["data"]["movements"] == 6
        assert announced["data"]["file"] == "kb.gpc"
    finally:
        get_topics.cache_clear()
        get_settings.cache_clear()
