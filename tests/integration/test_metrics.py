"""What an operator asks first, read from a running worker's ``/metrics`` (issue 32 item 1):
how far behind is it, how many payments wait unmatched and since when, when did the last
bank statement arrive.

A payments worker against its own Kafka node and a PostgreSQL behind a proxy the test
stops: with the database away, the payments published meanwhile cannot be applied, and the
worker's ``billing_consumer_lag`` counts them per partition; with it back they are applied,
the lag falls to 0, and, as no contract knows their VS, they wait in the unmatched queue
that ``billing_unmatched_payments*`` count. An empty statement imported then sets its
account's ``billing_bank_statement_last_import_timestamp_seconds``."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.envelope import envelope
from schemas.events import PaymentReceived
from services.bank_import import importer
from services.devstack.procs import free_port
from services.devstack.stack import create_topics, stop
from services.runtime.settings import Settings, Topics
from tests.conftest import ROOT
from tests.integration.test_health import Proxy, socket_of, tcp_url, wait_health, worker_env

SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not (m := SAMPLE.match(line)):
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def series(port: int, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in scrape(port).items() if n == name}


def wait_for(
    port: int, name: str, ok: Callable[[dict[Any, float]], bool], timeout: float = 60
) -> dict[Any, float]:
    deadline = time.monotonic() + timeout
    found: dict[Any, float] = {}
    while time.monotonic() < deadline:
        found = series(port, name)
        if ok(found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"{name} not as expected after {timeout} s: {found}")


async def publish(bootstrap: str, topic: str, payments: list[PaymentReceived]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for p in payments:
            event = envelope("payment.received.v1", "/importers/test", None, p, datetime.now(UTC))
            await producer.send_and_wait(
                topic, event.model_dump_json().encode(), key=p.bank_tx_id.encode()
            )
    finally:
        await producer.stop()


def payment(n: int, amount_minor: int, currency: str) -> PaymentReceived:
    account = {"CZK": "2001234561/2010", "EUR": "SK3511000000002612345674"}[currency]
    return PaymentReceived(
        account=account, bank_tx_id=f"m-{n}", booked_on=date(2026, 12, 1),
        value_on=date(2026, 12, 1), amount_minor=amount_minor, currency=currency,
        vs=str(900000 + n),
    )  # fmt: skip


def test_lag_and_the_unmatched_queue_on_metrics(
    database_url: str, broker: str, tmp_path: Path
) -> None:
    topics = Topics()
    settings = Settings(kafka_bootstrap_servers=broker, database_url=database_url)
    asyncio.run(create_topics(settings, topics))
    proxy = Proxy(socket_of(database_url))
    proxy.start()
    port = free_port()
    env = worker_env(tcp_url(database_url, proxy), broker, port, tmp_path)
    env["BILLING_GAUGE_INTERVAL"] = "0.2"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.payments.worker"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    lag = "billing_consumer_lag"
    try:
        wait_health(port, 200, proc=worker)
        on_received = lambda s: {  # noqa: E731
            labels: v for labels, v in s.items() if ("topic", topics.payments_received) in labels
        }
        # every partition held is measured, each counted once, by service, topic, partition
        held = wait_for(port, lag, lambda s: len(on_received(s)) == 4)
        assert set(on_received(held).values()) == {0}
        assert all(dict(labels)["service"] == "payments" for labels in held)
        assert {dict(labels)["partition"] for labels in on_received(held)} == {"0", "1", "2", "3"}
        # nothing waits: configured currencies show an empty queue
        empty = series(port, "billing_unmatched_payments")
        assert empty[frozenset({("currency", "CZK")})] == 0

        proxy.stop()  # the worker cannot apply what comes now
        payments = [payment(n, 10000 + n, "CZK") for n in range(7)]
        payments += [payment(7, 2500, "EUR")]
        asyncio.run(publish(broker, topics.payments_received, payments))
        behind = wait_for(port, lag, lambda s: sum(on_received(s).values()) == 8)
        assert max(on_received(behind).values()) < 8  # per partition, not one total

        proxy.start()
        wait_for(port, lag, lambda s: sum(on_received(s).values()) == 0)
        czk, eur = frozenset({("currency", "CZK")}), frozenset({("currency", "EUR")})
        waiting = wait_for(port, "billing_unmatched_payments", lambda s: s.get(czk) == 7)
        assert waiting[eur] == 1
        amount = series(port, "billing_unmatched_payments_amount")
        assert amount[czk] == sum(10000 + n for n in range(7)) / 100 and amount[eur] == 25.0
        oldest = wait_for(
            port, "billing_unmatched_payments_oldest_seconds", lambda s: s.get(czk, 0) > 0.5
        )
        assert oldest[czk] < 120

        # a statement with no movement is an import too: the account's last import time
        imported = "billing_bank_statement_last_import_timestamp_seconds"
        before = time.time()
        report = asyncio.run(
            importer.import_movements(
                settings, [], "empty.gpc", "gpc", accounts=["2001234561/2010"]
            )
        )
        assert report.published == 1  # bank_statement.imported, nothing else
        at = wait_for(port, imported, lambda s: len(s) == 1)
        assert at == {frozenset({("account", "2001234561/2010")}): pytest.approx(before, abs=5)}
    finally:
        stop(worker)  # type: ignore[arg-type]
        proxy.close()
