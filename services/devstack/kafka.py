"""Apache Kafka for the development stack, the tests and the benchmarks: the broker's jars
fetched by Maven from the project's own pom (tools/kafka/pom.xml) into a cache the scripts
reuse, then one KRaft node or a cluster of them started from a plain classpath.

- ``ensure_jars()`` runs ``mvn dependency:copy-dependencies`` once per Kafka version into
  ``$BILLING_KAFKA_CACHE`` (default ``~/.cache/isp-billing/kafka-<version>``); Maven's own
  ``~/.m2`` holds the downloads, so a second copy is seconds.
- ``KafkaNode`` is one combined broker+controller JVM: it writes its properties, formats its
  log directory the first time (``kafka.tools.StorageTool``), starts ``kafka.Kafka`` and
  waits for the line ``[KafkaRaftServer nodeId=N] Kafka Server started``. Each node is its
  own process, so a fault test can SIGKILL, SIGSTOP or restart one.
- ``KafkaCluster`` is N such nodes on one static quorum (``controller.quorum.voters``), with
  replication settings that fit N: one node keeps everything at one replica; three or more
  replicate three times with ``min.insync.replicas=2``.

Each node has three listeners: CLIENT for the project's clients (PLAINTEXT, or SASL_SSL with
SCRAM-SHA-512 when ``ClientSecurity`` is given), INTERNAL for replication between brokers
and CONTROLLER for the quorum, both PLAINTEXT on loopback.

``python -m services.devstack.kafka fetch`` fetches the jars (``make kafka``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.devstack.procs import spawn, stop

ROOT = Path(__file__).resolve().parents[2]
KAFKA_DIR = ROOT / "tools" / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG_CONFIG = KAFKA_DIR / "log4j2.properties"
STARTED = "Kafka Server started"


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or Maven could not fetch the broker."""


def version() -> str:
    """The pinned Kafka version: the pom's ``kafka.version`` property."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    if found is None or not found.text:
        raise KafkaUnavailable(f"{POM}: no <kafka.version> property")
    return found.text.strip()


def cache_dir() -> Path:
    base = os.environ.get("BILLING_KAFKA_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "isp-billing" / f"kafka-{version()}"


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise KafkaUnavailable("no java on PATH (make system-deps installs a JRE)")
    return found


def available() -> bool:
    """Java is here, and the jars are cached or Maven is here to fetch them."""
    if shutil.which("java") is None:
        return False
    return (cache_dir() / "lib" / ".complete").exists() or shutil.which("mvn") is not None


def ensure_jars(out: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Path:
    """The broker's classpath folder, fetched by Maven if it is not cached yet. Safe to call
    from several processes at once: one fetches while the others wait on a file lock."""
    base = cache_dir()
    lib = base / "lib"
    if (lib / ".complete").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable("no mvn on PATH (make system-deps installs Maven)")
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (lib / ".complete").exists():
            return lib
        out(f"fetching Apache Kafka {version()} with Maven into {lib} ...")
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=base))
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = (done.stdout + done.stderr).strip().splitlines()[-20:]
            raise KafkaUnavailable("Maven could not fetch Kafka:\n" + "\n".join(tail))
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if f"kafka_2.13-{version()}.jar" not in jars:
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaUnavailable(f"Maven fetched no kafka_2.13-{version()}.jar: {jars}")
        (staging / ".complete").write_text("\n".join(jars) + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        return lib


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, as Kafka's Uuid prints them; like
    Kafka's own, never one starting with "-" (a command line would take it for an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
SCRAM_ITERATIONS = 4096  # Kafka's default and its minimum for both mechanisms


@dataclass(frozen=True)
class ClientSecurity:
    """The CLIENT listener as production runs it: TLS with a server certificate (PEM, key
    and chain in one file) and SCRAM users created when the storage is formatted."""

    keystore_pem: Path
    users: dict[str, str]  # name -> password
    mechanism: str = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        if self.mechanism not in SCRAM_HASHES:
            raise ValueError(
                f"ClientSecurity.mechanism: {self.mechanism!r} is not one of {list(SCRAM_HASHES)}"
            )
        for name in self.users:
            # the format tool splits its argument on commas, quoted or not
            if not name or "," in name:
                raise ValueError(f"ClientSecurity.users: {name!r} is empty or has a comma")

    def scram_args(self) -> list[str]:
        """``--add-scram`` arguments for the format tool: each user's salted password (RFC
        5802 Hi, as Kafka's ScramFormatter computes it), not the password itself: the tool
        would split a password at its commas and strip quotes around it, and its command
        line, which every user of the machine can read, then opens this cluster only."""
        digest = SCRAM_HASHES[self.mechanism]
        args: list[str] = []
        for name, password in self.users.items():
            salt = os.urandom(32)
            salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, SCRAM_ITERATIONS)
            fields = (
                f'name="{name}",salt="{base64.b64encode(salt).decode()}",'
                f'saltedpassword="{base64.b64encode(salted).decode()}",'
                f"iterations={SCRAM_ITERATIONS}"
            )
            args += ["--add-scram", f"{self.mechanism}=[{fields}]"]
        return args


@dataclass
class KafkaNode:
    node_id: int
    port: int  # CLIENT
    internal_port: int
    controller_port: int
    data_dir: Path
    log_path: Path
    props: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    heap: str = "512m"
    _starts_seen: int = 0

    @property
    def props_path(self) -> Path:
        return self.data_dir.parent / f"server-{self.node_id}.properties"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"kafka node {self.node_id} not started"
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_props(self) -> Path:
        self.props_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.props.items()]
        self.props_path.write_text("\n".join(lines) + "\n")
        return self.props_path

    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def format(self, lib: Path, cluster_id: str, extra: list[str]) -> None:
        done = subprocess.run(
            [
                java(),
                "-Xmx128m",
                f"-Dlog4j2.configurationFile={LOG_CONFIG}",
                "-cp",
                f"{lib}/*",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                f"--config={self.write_props()}",
                *extra,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise KafkaUnavailable(
                f"formatting kafka node {self.node_id} failed: {done.stdout}{done.stderr}"
            )

    def _started_lines(self) -> int:
        if not self.log_path.exists():
            return 0
        mark = f"[KafkaRaftServer nodeId={self.node_id}] {STARTED}"
        with open(self.log_path, errors="replace") as f:
            return f.read().count(mark)

    def start(self, lib: Path) -> None:
        self.write_props()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._starts_seen = self._started_lines()
        jvm = os.environ.get("BILLING_KAFKA_JVM_OPTS", "").split()
        self.proc = spawn(
            [
                java(),
                f"-Xms{self.heap}",
                f"-Xmx{self.heap}",
                "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG_CONFIG}",
                *jvm,
                "-cp",
                f"{lib}/*",
                "kafka.Kafka",
                str(self.props_path),
            ],
            dict(os.environ),
            self.log_path,
        )

    def wait_started(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self._started_lines() <= self._starts_seen:
            if self.proc is None or self.proc.poll() is not None:
                raise KafkaUnavailable(
                    f"kafka node {self.node_id} exited at start; {self.log_path}:\n" + self._tail()
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kafka node {self.node_id} not started after {timeout:.0f} s; "
                    f"{self.log_path}:\n" + self._tail()
                )
            time.sleep(0.1)

    def _tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """A controlled shutdown (SIGTERM), SIGKILL after ``timeout``."""
        self.resume()
        stop(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, its partitions' leaders move on the session
        timeout and its log is recovered at the next start."""
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def pause(self) -> None:
        if self.running():
            os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            os.killpg(self.pid, signal.SIGCONT)


@dataclass
class KafkaCluster:
    nodes: list[KafkaNode]
    run_dir: Path
    security: ClientSecurity | None = None
    lib: Path | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def name(self) -> str:
        return f"Apache Kafka {version()}"

    def cluster_id(self) -> str:
        path = self.run_dir / "cluster.id"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        """Format what is not formatted yet, start every node, then wait for each: a node
        finishes its start only once a majority of the quorum is up."""
        self.lib = ensure_jars()
        cid = self.cluster_id()
        scram = self.security.scram_args() if self.security is not None else []
        for node in self.nodes:
            if not node.formatted():
                node.format(self.lib, cid, scram)
        for node in self.nodes:
            node.start(self.lib)
        try:
            for node in self.nodes:
                node.wait_started(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, node: KafkaNode, timeout: float = 120.0) -> None:
        assert self.lib is not None
        node.start(self.lib)
        node.wait_started(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.resume()
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                if node.running():
                    os.killpg(node.pid, signal.SIGTERM)
        for node in self.nodes:
            stop(node.proc, 20.0)


def replication(size: int) -> dict[str, str]:
    """Settings that fit a cluster of ``size`` nodes: three replicas and two in sync where
    there are three nodes or more, else every node a replica and one in sync."""
    rf = min(size, 3)
    isr = 2 if rf >= 3 else 1
    return {
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": str(max(3, size)),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "transaction.state.log.num.partitions": str(max(3, size)),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(isr),
        "unclean.leader.election.enable": "false",
    }


def cluster(
    run_dir: Path,
    ports: list[tuple[int, int, int]],
    security: ClientSecurity | None = None,
    heap: str | None = None,
) -> KafkaCluster:
    """A cluster of ``len(ports)`` nodes, each given (client, internal, controller) ports,
    with node N's log directory at ``run_dir/nN`` and its log at ``run_dir/logs``. Nothing
    starts until ``start()``; a run folder formatted before keeps its data."""
    size = len(ports)
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, _, c) in enumerate(ports, 1))
    client = "SASL_SSL" if security else "PLAINTEXT"
    nodes = []
    for i, (port, internal, controller) in enumerate(ports, 1):
        props = {
            "process.roles": "broker,controller",
            "node.id": str(i),
            "controller.quorum.voters": voters,
            "listeners": (
                f"CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},"
                f"CONTROLLER://127.0.0.1:{controller}"
            ),
            "advertised.listeners": (f"CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}"),
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": (
                f"CLIENT:{client},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "log.dirs": str(run_dir / f"n{i}"),
            "num.partitions": "2",
            **replication(size),
            # a consumer group's first member is not held back 3 s for others to join
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            # a dead broker is fenced after 6 s (default 9), its replicas out of the ISR
            # after 10 s (default 30): fault tests see leaders move within seconds
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "1000",
            "replica.lag.time.max.ms": "10000",
            # two cores run everything here
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "num.replica.fetchers": "1",
        }
        if security is not None:
            mech = security.mechanism.lower()
            props |= {
                "sasl.enabled.mechanisms": security.mechanism,
                f"listener.name.client.{mech}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
                "listener.name.client.ssl.keystore.type": "PEM",
                "listener.name.client.ssl.keystore.location": str(security.keystore_pem),
            }
        nodes.append(
            KafkaNode(
                node_id=i,
                port=port,
                internal_port=internal,
                controller_port=controller,
                data_dir=run_dir / f"n{i}",
                log_path=run_dir / "logs" / f"kafka-{i}.log",
                props=props,
                heap=heap or ("512m" if size == 1 else "384m"),
            )
        )
    return KafkaCluster(nodes, run_dir, security)


def free_ports(n: int) -> list[tuple[int, int, int]]:
    from services.devstack.procs import free_port

    return [(free_port(), free_port(), free_port()) for _ in range(n)]


def _main(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        try:
            lib = ensure_jars()
        except KafkaUnavailable as exc:
            print(f"kafka: {exc}", file=sys.stderr)
            return 69  # EX_UNAVAILABLE
        print(f"Apache Kafka {version()}: {lib}")
        return 0
    if argv[:1] == ["version"]:
        print(version())
        return 0
    print("usage: python -m services.devstack.kafka fetch|version", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
