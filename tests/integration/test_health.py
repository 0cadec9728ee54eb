"""``/readyz`` asks PostgreSQL and Kafka for real: a worker against a database behind a
proxy the test can stop, and a Kafka node of its own that the test stops, answers 200
naming its checks (and its standing in its consumer group), then 503 naming the one that
stopped, within the check timeout, while ``/healthz`` (liveness) stays 200. Every
line the worker wrote meanwhile (its start, Faust's and aiokafka's own logging, the
failures) is JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiokafka import AIOKafkaConsumer

from services.devstack import kafka
from services.devstack.procs import free_port
from services.devstack.stack import create_topics, start_broker, stop
from services.runtime.health import Health, group
from services.runtime.settings import Settings, Topics
from tests.conftest import ROOT


class Proxy:
    """TCP on 127.0.0.1 to PostgreSQL's socket; ``stop`` drops every connection and
    refuses new ones, as a stopped server does; ``start`` again on the same port."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_unix_connection(self.socket_path)
        self.writers |= {w, uw}
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    def start(self) -> None:
        async def go() -> None:
            self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

        self._call(go())

    def stop(self) -> None:
        async def go() -> None:
            assert self.server is not None
            self.server.close()
            for w in self.writers:
                w.close()
            self.writers.clear()

        self._call(go())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def tcp_url(database_url: str, proxy: Proxy) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}{urlsplit(database_url).path}"


def socket_of(database_url: str) -> str:
    """The server's socket file, from a URL like ``postgresql://u@/db?host=/dir``."""
    folder = parse_qs(urlsplit(database_url).query)["host"][0]
    (sock,) = [p for p in Path(folder).glob(".s.PGSQL.*") if not p.name.endswith(".lock")]
    return str(sock)


def healthz(port: int, path: str = "/readyz") -> tuple[int, dict[str, Any], float]:
    """The code, body and time of the worker's readiness (or ``path``'s) answer."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            code, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read()
    return code, json.loads(body), time.monotonic() - started


def wait_health(
    port: int, want: int, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None
) -> dict[str, Any]:
    """``/readyz``'s body once it answers ``want``; fails at once if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            code, body, _ = healthz(port)
            if code == want:
                return body
            last = (code, body)
        time.sleep(0.2)
    raise AssertionError(f"/readyz not {want} after {timeout} s: {last}")


def json_lines(text: str, where: str) -> list[dict[str, Any]]:
    lines = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{where} line {n} is not JSON: {line!r}")
    return lines


def worker_env(database_url: str, bootstrap: str, port: int, tmp_path: Path) -> dict[str, str]:
    """A worker's environment in production mode, the default: payments refuses to start
    without its operators' tokens, which are in a file under ``tmp_path``."""
    tokens = tmp_path / "operator-tokens"
    tokens.write_text(f"ops:{'t' * 40}\n")
    return {
        "PATH": "/usr/bin:/bin",
        "BILLING_DATABASE_URL": database_url,
        "BILLING_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BILLING_METRICS_PORT": str(port),
        "BILLING_STATE_DIR": str(tmp_path / "state"),
        "BILLING_OPERATOR_TOKENS_FILE": str(tokens),
    }


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Any]:
    b = start_broker(tmp_path / "kafka", kafka.free_ports(1)[0])
    yield b
    b.stop()


def test_readyz_names_the_stopped_dependency(
    database_url: str, own_broker: Any, tmp_path: Path
) -> None:
    asyncio.run(
        create_topics(
            Settings(kafka_bootstrap_servers=own_broker.bootstrap, database_url=database_url),
            Topics(),
        )
    )
    proxy = Proxy(socket_of(database_url))
    proxy.start()
    port = free_port()
    env = worker_env(tcp_url(database_url, proxy), own_broker.bootstrap, port, tmp_path)
    env["BILLING_HEALTH_TIMEOUT"] = "1"
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as o, err.open("wb") as e:
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.payments.worker"],
            cwd=ROOT, env=env, stdout=o, stderr=e, start_new_session=True,
        )  # fmt: skip
    try:
        body = wait_health(port, 200, proc=worker)
        assert body["status"] == "ok"
        assert set(body["checks"]) == {"database", "kafka", "group"}
        assert all(c["ok"] for c in body["checks"].values())
        assert body["checks"]["kafka"]["partitions"] == 12  # three topics of four
        joined = body["checks"]["group"]
        assert joined["group"] == "billing-payments" and joined["generation"] >= 1
        assert joined["partitions"] == 12

        proxy.stop()  # PostgreSQL stops answering
        code, body, took = healthz(port)
        assert code == 503 and body["failing"] == ["database"], body
        assert body["checks"]["kafka"]["ok"] and "error" in body["checks"]["database"]
        assert took < 3
        # alive all the same: nothing a restart would mend
        assert healthz(port, "/healthz")[:2] == (200, {"status": "ok"})

        proxy.start()  # back: the pool connects again
        wait_health(port, 200, timeout=30)

        own_broker.stop()  # the cluster goes away
        body = wait_health(port, 503, timeout=30)
        # the group's coordinator was on it too: ``group`` fails with it, soon or at once
        assert body["failing"][0] == "kafka" and body["checks"]["database"]["ok"], body
        assert set(body["failing"]) <= {"kafka", "group"}
        assert healthz(port)[2] < 3
        assert healthz(port, "/healthz")[0] == 200
    finally:
        stop(worker)  # type: ignore[arg-type]
        proxy.close()
    lines = json_lines(out.read_text(), "stdout") + json_lines(err.read_text(), "stderr")
    events = [line.get("event", "") for line in lines]
    assert "worker started" in events
    assert all(line.get("service") == "payments" for line in lines)
    # aiokafka's own logging of the lost broker came through the same JSON handler
    assert any(line.get("logger", "").startswith("aiokafka") for line in lines), events


def test_a_worker_that_cannot_start_says_why_in_json_and_exits_78(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.notify.worker"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BILLING_BATCH_SIZE": "many"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    (line,) = json_lines(done.stdout, "stdout") + json_lines(done.stderr, "stderr")
    assert line["event"] == "worker cannot start" and line["exit_code"] == 78
    assert line["error"].startswith("BILLING_BATCH_SIZE: ")


def test_a_member_not_in_its_group_is_not_ready() -> None:
    """Before the consumer has joined (and while it rejoins) the group check fails, naming
    why: its partitions are nobody's yet, or another member's."""

    async def go() -> dict[str, Any]:
        consumer = AIOKafkaConsumer("payments.received", bootstrap_servers="127.0.0.1:9")
        return await Health({"group": group(consumer)}, 1).check()

    ok, body = asyncio.run(go())
    assert not ok and body["failing"] == ["group"]
    assert body["checks"]["group"]["error"] == "the consumer has not joined its group yet"
