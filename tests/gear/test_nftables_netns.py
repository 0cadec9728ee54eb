"""`billing gear nftables` for real: a customer, a gateway and an "internet" in network
namespaces; the adapter consumes network.access from a Kafka-protocol broker and rewrites
the gateway's nftables; curl checks that each state gets exactly what it should."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.envelope import envelope
from schemas.events import NetworkAccess, Subscribers
from services.devstack import kafka
from services.devstack.stack import create_topics, free_port, start_broker
from services.runtime.settings import Settings, Topics
from tests.conftest import unavailable
from tests.gear.netns import BANK, CUSTOMER_NET, NOTICE, SITE, Net, missing, sh

ROOT = Path(__file__).resolve().parents[2]
A, N, S, R, S2 = (f"{CUSTOMER_NET}.{n}" for n in (2, 3, 4, 5, 6))  # one address per contract
T1, T2 = f"{CUSTOMER_NET}.7", f"{CUSTOMER_NET}.8"  # the traffic test's (no access events)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    why = missing()
    if why:
        unavailable(why, "the network tests")
    n = Net()
    n.up(customers=8)
    yield n
    n.down()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    b = start_broker(tmp_path_factory.mktemp("kafka"), kafka.free_ports(1)[0])
    asyncio.run(create_topics(Settings(kafka_bootstrap_servers=b.bootstrap), Topics()))
    yield b.bootstrap
    b.stop()


class Snapshot:
    """A stand-in for provisioning's GET /access."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.port = free_port()
        self.loop = asyncio.new_event_loop()

    async def handle(self, request: web.Request) -> web.Response:
        items = sorted(self.items.values(), key=lambda i: i["contract"])
        return web.json_response({"items": items, "next_after": None})

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/access", self.handle)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        threading.Thread(target=self.loop.run_forever, daemon=True).start()


def access(contract: str, address: str, state: str, version: int) -> NetworkAccess:
    return NetworkAccess(
        contract=contract,
        subscribers=Subscribers(ipv4=[address]),
        state=state,  # type: ignore[arg-type]
        reason="test",
        version=version,
        effective_at=datetime.now(UTC),
    )


async def publish(bootstrap: str, items: list[NetworkAccess]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for item in items:
            event = envelope("network.access.v1", "/test", item.contract, item, datetime.now(UTC))
            await producer.send_and_wait(
                Topics().network_access,
                event.model_dump_json().encode(),
                key=item.contract.encode(),
            )
    finally:
        await producer.stop()


async def applied_reports(bootstrap: str) -> list[dict[str, Any]]:
    return await topic_data(bootstrap, Topics().network_applied)


async def topic_data(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The ``data`` of every event on ``topic`` so far."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        out: list[dict[str, Any]] = []
        for records in (await consumer.getmany(timeout_ms=2000)).values():
            out += [json.loads(r.value)["data"] for r in records]
        return out
    finally:
        await consumer.stop()


def wait_for(check: Any, timeout: float = 15.0, step: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"not true after {timeout}s: {check.__doc__ or check}")


def test_each_state_gets_exactly_what_it_should(net: Net, broker: str) -> None:
    snapshot = Snapshot()
    snapshot.items = {  # what provisioning says before the adapter starts
        c: access(c, addr, state, 1).model_dump(mode="json")
        for c, addr, state in (
            ("1001", A, "active"),
            ("1002", N, "notice"),
            ("1003", S, "suspended"),
            ("1004", R, "restricted"),
            ("1005", S2, "active"),
        )
    }
    snapshot.start()
    env = {
        **os.environ,
        "BILLING_KAFKA_BOOTSTRAP_SERVERS": broker,
        "BILLING_LOG_LEVEL": "info",
    }
    gear = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "gear", "nftables", "--gear-id", "gw-test",
         "--notice", f"{NOTICE}:8080", "--garden", BANK, "--restrict-rate", "200 kbytes/second",
         "--nft", " ".join(net.nft()), "--snapshot-url", f"http://127.0.0.1:{snapshot.port}/access"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # Started from the snapshot.
        wait_for(lambda: S in net.set_members("suspended4") and N in net.set_members("notice4"))
        assert R in net.set_members("restricted4")

        # active: everything.
        assert net.curl(A, f"http://{SITE}/")[:2] == (0, "INTERNET")
        # notice: HTTP goes to the notice page; other ports and the walled garden pass.
        assert net.curl(N, f"http://{SITE}/")[:2] == (0, "NOTICE-PAGE")
        assert net.curl(N, f"http://{SITE}:8081/")[:2] == (0, "INTERNET-8081")
        assert net.curl(N, f"http://{BANK}/")[:2] == (0, "BANK")
        # suspended: rejected at once (ICMP admin-prohibited), except the garden and the
        # notice page that explains why.
        code, _, took = net.curl(S, f"http://{SITE}:8081/")
        assert code == 7 and took < 1.0, (code, took)  # refused, not a timeout
        assert net.curl(S, f"http://{BANK}/")[:2] == (0, "BANK")
        assert net.curl(S, f"http://{SITE}/")[:2] == (0, "NOTICE-PAGE")
        # restricted: slow, not cut. 400 kB at 200 kB/s takes about 2 s; active takes ms.
        code, body, took = net.curl(R, f"http://{SITE}/big", timeout=10)
        assert code == 0 and len(body) == 400_000 and took > 1.0, took
        _, body, fast = net.curl(A, f"http://{SITE}/big")
        assert len(body) == 400_000 and fast < 0.5, fast

        # Restore: a paying suspended customer is through within a second of the event.
        asyncio.run(publish(broker, [access("1003", S, "active", 2)]))
        published = time.monotonic()

        def through() -> bool:
            """suspended customer reaches the site"""
            return net.curl(S, f"http://{SITE}:8081/", timeout=0.5)[:2] == (0, "INTERNET-8081")

        wait_for(through, timeout=5)
        restore = time.monotonic() - published
        assert restore < 1.0, f"restore took {restore:.3f}s"

        # The notice confirmed, another suspended, the restricted restored; replays change nothing.
        moves = [
            access("1002", N, "active", 2),
            access("1005", S2, "suspended", 2),
            access("1004", R, "active", 2),
        ]
        asyncio.run(publish(broker, [*moves, *moves, access("1003", S, "suspended", 1)]))
        wait_for(
            lambda: S2 in net.set_members("suspended4") and N not in net.set_members("notice4")
        )
        assert net.curl(N, f"http://{SITE}/")[:2] == (0, "INTERNET")
        assert net.curl(S2, f"http://{SITE}:8081/")[0] == 7
        assert net.curl(S, f"http://{SITE}:8081/")[:2] == (0, "INTERNET-8081")  # v1 < v2: ignored
        assert R not in net.set_members("restricted4")

        # Hand-edited table: the adapter rebuilds it rather than failing.
        subprocess.run([*net.nft(), "delete", "table", "inet", "billing"], check=True)
        asyncio.run(publish(broker, [access("1001", A, "notice", 2)]))
        wait_for(lambda: A in net.set_members("notice4") and S2 in net.set_members("suspended4"))

        reports = asyncio.run(applied_reports(broker))
        seen = {(r["contract"], r["version"], r["state"]) for r in reports}
        assert {("1003", 2, "active"), ("1002", 2, "active"), ("1001", 2, "notice")} <= seen
        assert all(r["gear"] == "gw-test" for r in reports)
        print(f"restore through nftables: {restore * 1000:.0f} ms")
    finally:
        gear.terminate()
        try:
            out, _ = gear.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            gear.kill()
            out, _ = gear.communicate()
        if gear.returncode not in (0, -15):
            print(out.decode(errors="replace")[-3000:])


async def counter_reports(bootstrap: str) -> list[dict[str, Any]]:
    return await topic_data(bootstrap, Topics().traffic_counters)


def test_traffic_is_counted_per_address_within_one_report_interval(net: Net, broker: str) -> None:
    """Known downloads per address (7 x 400 kB from one, 2 x 400 kB from another) are in
    the published counters, both directions, within one report interval; a gear restart
    that finds the counters' table keeps its boot id and its counts."""
    for table in ("billing", "billing_traffic"):  # the test before left its rules
        subprocess.run([*net.nft(), "delete", "table", "inet", table], check=False)
    snapshot = Snapshot()
    snapshot.items = {
        c: access(c, addr, "active", 1).model_dump(mode="json")
        for c, addr in (("2001", T1), ("2005", T2))
    }
    snapshot.start()
    env = {**os.environ, "BILLING_KAFKA_BOOTSTRAP_SERVERS": broker}

    def start_gear() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "gear", "nftables", "--gear-id", "gw-traffic",
             "--table", "tr", "--traffic-interval", "1", "--nft", " ".join(net.nft()),
             "--snapshot-url", f"http://127.0.0.1:{snapshot.port}/access"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def latest() -> dict[str, Any] | None:
        reports = [r for r in asyncio.run(counter_reports(broker)) if r["gear"] == "gw-traffic"]
        return max(reports, key=lambda r: r["collected_at"]) if reports else None

    gear = start_gear()
    try:
        wait_for(lambda: latest() is not None, timeout=20, step=0.5)
        boot = latest()["boot_id"]  # type: ignore[index]
        for _ in range(7):
            assert len(net.curl(T1, f"http://{SITE}/big")[1]) == 400_000
        for _ in range(2):
            code, body, _ = net.curl(T2, f"http://{SITE}/big")
            assert len(body) == 400_000, (code, sh(*net.nft(), "list", "ruleset").stdout)
        done = time.monotonic()

        def counted() -> bool:
            """both downloads in a report"""
            r = latest()
            got = {c["address"]: c for c in r["counters"]} if r else {}
            return (
                got.get(T1, {}).get("rx_bytes", 0) >= 2_800_000
                and got.get(T2, {}).get("rx_bytes", 0) >= 800_000
            )

        wait_for(counted, timeout=10, step=0.3)
        took = time.monotonic() - done
        r = latest()
        assert r is not None and r["boot_id"] == boot
        got = {c["address"]: c for c in r["counters"]}
        assert got[T1]["contract"] == "2001" and got[T2]["contract"] == "2005"
        # downloads plus TCP/IP headers; the requests and ACKs the other way
        assert 2_800_000 <= got[T1]["rx_bytes"] < 3_000_000, got[T1]
        assert 800_000 <= got[T2]["rx_bytes"] < 900_000, got[T2]
        assert 0 < got[T1]["tx_bytes"] < 300_000 and 0 < got[T2]["tx_bytes"] < 100_000
        print(f"counted within {took:.1f} s of the transfers (interval 1 s)")
    finally:
        gear.terminate()
        gear.wait(timeout=10)
    # a restart keeps the table, its boot id and its counts
    gear = start_gear()
    try:
        started = time.monotonic()
        wait_for(
            lambda: (latest() or {}).get("collected_at", "") > datetime.fromtimestamp(
                time.time() - (time.monotonic() - started), UTC
            ).isoformat(),
            timeout=20, step=0.5,
        )  # fmt: skip
        r = latest()
        assert r is not None and r["boot_id"] == boot
        got = {c["address"]: c for c in r["counters"]}
        assert got[T1]["rx_bytes"] >= 2_800_000
    finally:
        gear.terminate()
        gear.wait(timeout=10)
        subprocess.run([*net.nft(), "delete", "table", "inet", "tr_traffic"], check=False)
        subprocess.run([*net.nft(), "delete", "table", "inet", "tr"], check=False)
