"""The whole chain on a real Kafka-protocol broker (Tansu) and PostgreSQL, workers as
separate processes, exactly as `make run` starts them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import events as ev
from schemas.registry import event_of
from services.bank_import import importer
from services.devstack.demo import Scenario
from services.devstack.quiesce import end_offsets
from services.devstack.stack import Stack
from services.runtime.kafka_client import partitions
from services.runtime.settings import Topics
from services.workers import SERVICES
from tests.e2e.prometheus import check_dashboards, scraping

pytestmark = pytest.mark.e2e


async def read_all(
    bootstrap: str, topics: list[str]
) -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions(consumer, topics)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await end_offsets(consumer, parts)  # the high watermarks
        out = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in parts])

        while await behind():
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out += [(tp.topic, r.key, r.value, list(r.headers)) for r in records]
        return out
    finally:
        await consumer.stop()


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            q: await conn.fetchval(f"SELECT count(*) FROM {q}")
            for q in (
                "invoicing.invoices",
                "payments.bank_transactions",
                "payments.allocations",
                "dunning.actions",
                "provisioning.acknowledgements",
                "notify.deliveries",
            )
        }
    finally:
        await conn.close()


# Panels that must show data once the scenario has run (dashboard uid -> panel titles):
# what it drives (payments matched, invoices, dunning to a suspension, a restore the gear
# applied, a statement imported) and what every worker reports.
KEY_PANELS = {
    "billing-money": ["Payments per hour", "Invoices per hour", "Unmatched payments waiting",
                      "Documents not yet delivered"],
    "billing-dunning": ["Contracts by dunning stage", "Contracts by access state",
                        "Dunning actions per hour"],
    "billing-reconnect": ["Reconnect time", "Reconnects per hour"],
    "billing-pipeline": ["Workers up", "Consumer lag", "Events per second", "Outbox backlog"],
    "billing-bank": ["Since the last import", "Statements and payments imported per hour"],
    "billing-gear": ["Contracts a gear is behind on", "Access changes sent and applied per hour"],
}  # fmt: skip


async def statement_imported(scenario: Scenario) -> None:
    """An empty statement of the CZK account, as ``billing import`` records one: the
    last-import gauge has an account to show."""
    account = scenario.settings.bank_accounts["CZK"]
    await importer.import_movements(scenario.settings, [], "empty.gpc", "gpc", accounts=[account])


async def gear_applies(stack: Stack) -> None:
    """A gear, as services/gear reports: every contract's latest network.access applied now
    (the stack runs no gear). B's restore ends its reconnect; the gear has a drift."""
    latest: dict[str, dict[str, Any]] = {}
    for _topic, _key, value, _headers in await read_all(stack.bootstrap, [Topics().network_access]):
        access = json.loads(value)["data"]
        if access["version"] > latest.get(access["contract"], {"version": 0})["version"]:
            latest[access["contract"]] = access
    assert latest, "no network.access to apply"
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        now = datetime.now(UTC)
        for contract, access in latest.items():
            data = ev.GearApplied(
                gear="gw-e2e", contract=contract, version=access["version"],
                state=access["state"], applied_at=now,
            )  # fmt: skip
            event = event_of("/gear/gw-e2e", contract, data, now)
            await producer.send(
                Topics().network_applied, event.model_dump_json().encode(), key=contract.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


def test_scenario_then_every_event_twice_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    """The scenario, scraped by a real Prometheus: then every dashboard query evaluates and
    the key panels have data (issue 32 item 2); then the replay."""
    with scraping(stack, tmp_path / "prometheus") as prom:
        scenario = Scenario(stack)
        asyncio.run(statement_imported(scenario))
        assert asyncio.run(scenario.run()), scenario.failures
        assert scenario.restore_delay is not None and scenario.restore_delay < 1.0
        started = time.monotonic()
        asyncio.run(gear_applies(stack))
        prom.wait_until_up(len(SERVICES))
        # B's reconnect observed, and what the gauge timers count scraped
        prom.wait_for("billing_reconnect_seconds_count > 0")
        prom.wait_for("billing_access_drift")
        prom.wait_for("billing_bank_statement_last_import_timestamp_seconds")
        problems = check_dashboards(prom, KEY_PANELS)
        assert not problems, "\n".join(problems)
        ups = prom.query('up{job="billing"}')
        assert sorted(u["metric"]["worker"] for u in ups if u["value"][1] == "1") == sorted(
            SERVICES
        )
        print(f"dashboards checked against Prometheus in {time.monotonic() - started:.1f} s")

    async def replay() -> None:
        topics = [t for t in Topics().all()]
        before = await counts(stack.database_url)
        mails = len(stack.mail.messages)  # type: ignore[attr-defined]
        records = await read_all(stack.bootstrap, topics)
        access_before = sum(1 for r in records if r[0] == Topics().network_access)
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        for _ in range(2):
            for topic, key, value, headers in records:
                await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
        await producer.stop()
        await scenario.quiet()
        await asyncio.sleep(1.0)
        await scenario.quiet()
        assert await counts(stack.database_url) == before
        assert len(stack.mail.messages) == mails  # type: ignore[attr-defined]
        after = await read_all(stack.bootstrap, [Topics().network_access])
        assert len(after) == access_before * 3  # only the replayed copies, nothing new

    asyncio.run(replay())


def test_sigkill_any_worker_mid_scenario_loses_and_duplicates_nothing(stack: Stack) -> None:
    kills = {
        "billing-run": "invoicing",
        "payments-2026-12-10": "payments",
        "2026-12-18": "dunning",
        "2026-12-19": "notify",
        "2026-12-25": "provisioning",
        "2027-01-04": "dunning",
    }
    scenario = Scenario(stack, kills=kills)
    ok = asyncio.run(scenario.run())
    assert len(scenario.killed) == len(kills), scenario.killed
    assert ok, scenario.failures


def test_malformed_messages_go_to_the_dlq_and_workers_keep_going(stack: Stack) -> None:
    topics = Topics()
    consumed = [
        topics.contracts,
        topics.invoices,
        topics.payments_received,
        topics.payments,
        topics.dunning,
        topics.notices,
    ]
    valid = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/test",
        "type": "contract.upserted.v1",
        "time": datetime.now(UTC).isoformat(),
        "subject": "4242",
        "datacontenttype": "application/json",
        "data": {
            "contract": "4242",
            "customer_name": "After the poison",
            "currency": "CZK",
            "monthly_fee_minor": 100,
        },
    }
    poisons = [
        b"\x00not json at all",
        json.dumps({"hello": "world"}).encode(),
        json.dumps({**valid, "id": str(uuid.uuid4()), "type": "invoice.issued.v1"}).encode(),
    ]

    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        for topic in consumed:
            for poison in poisons:
                await producer.send_and_wait(topic, poison, key=b"4242")
        await producer.send_and_wait(topics.contracts, json.dumps(valid).encode(), key=b"4242")
        await producer.stop()
        await Scenario(stack).quiet()
        letters = await read_all(stack.bootstrap, [Topics.dlq(t) for t in consumed])
        by_topic: dict[str, list[str]] = {}
        for topic, _key, _value, headers in letters:
            h = dict(headers)
            assert h["dlq-consumer"].startswith(b"/services/")
            by_topic.setdefault(topic, []).append(h["dlq-reason"].decode())
        for topic in consumed:
            reasons = by_topic.get(Topics.dlq(topic), [])
            assert any("not a CloudEvent" in r for r in reasons), (topic, reasons)
            assert any("invoice.issued.v1 data invalid" in r for r in reasons), (topic, reasons)
        conn = await asyncpg.connect(stack.database_url)
        try:
            for schema in ("invoicing", "payments", "dunning", "provisioning", "notify"):
                assert await conn.fetchval(f"SELECT count(*) FROM {schema}.dead_letters") > 0
            # the valid event after the poison was applied by everyone who reads contracts
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM provisioning.access WHERE contract = '4242'"
                )
                == 1
            )
            assert (
                await conn.fetchval("SELECT count(*) FROM notify.contacts WHERE contract = '4242'")
                == 1
            )
        finally:
            await conn.close()
        for service in ("payments", "dunning", "provisioning", "notify"):
            assert stack.workers.procs[service].poll() is None  # type: ignore[union-attr]
            port = stack.metrics_port(service)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
            assert f'billing_dlq_total{{service="{service}",topic="{topics.contracts}"}}' in text
            assert "billing_batch_processing_seconds_bucket" in text

    asyncio.run(go())
