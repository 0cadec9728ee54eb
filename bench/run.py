"""``make bench`` / ``make bench-quick``: each figure measured next to its limit in the same
run, on the embedded stack, after checking the outcome (a fast wrong answer fails).

Scenarios (issue 7), in the order they run (full N / quick N):
- import: a 100,000 / 20,000-line GPC file and camt.053 file parsed (lines/s; target
  100,000). A GPC line is a movement; camt.053 is laid out as banks write it, about 53 lines
  an entry, so its entries/s is given too. Then, on the stack, each file imported as
  ``billing import-statement`` does: parsed, recorded and published (``published_*``).
- contracts: the payments scenario's contracts loaded (``billing contracts load``).
- payments: 100,000 / 2,000 payments on ``payments.received`` through matching and
  settlement, dunning's re-evaluation and invoicing's paid status; limit: plain aiokafka
  producing and consuming as many records of the same size on the same broker.
- reconnect: 500 / 100 suspended contracts pay at 200/s while others pay at 1,000/s;
  latency from each payment's publication to its network.access restore (p50 <= 50 ms,
  p99 <= 250 ms); then 50 more pay at 20/s on a quiet system (the chain's own latency),
  with the median time of each hop (from the records' broker timestamps).
- dunning sweep: 1,000,000 / 100,000 contracts, every tenth three days overdue tomorrow;
  the clock moves one day and every due decision is made and published (<= 60 s); the CPU
  each process spent meanwhile.
- billing run: 1,000,000 / 20,000 contracts invoiced and every invoice.issued published;
  limit: PostgreSQL COPY of the same rows into a (logged) table with the same keys (<= 60 s
  and <= 5x); the CPU each process spent meanwhile; the time until payments and dunning
  have applied every invoice (dunning decides each contract again); and payments sent
  meanwhile, 20 a second, timed from publication to dunning's record of each.
- memory: peak RSS of every worker during all of the above (<= 250 MB each).

``--profile`` records every worker with py-spy into ``bench/profiles/`` (collapsed stacks and
a summary per worker). ``--kafka HOST:PORT`` runs on that Kafka cluster instead of an
embedded Tansu broker: every topic and consumer group the run makes is its own (named under
``bench-<run>``), and its topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import cdr
from schemas.events import PaymentReceived
from schemas.registry import event_of
from services.bank_import import importer
from services.bank_import.formats import parse_statement
from services.devstack.demo import Scenario, isolated_stack
from services.devstack.quiesce import end_offsets
from services.devstack.stack import DEV_SUPPLIER, Stack
from services.invoicing import bills, stored
from services.invoicing.domain import DueRule
from services.invoicing.settings import InvoicingSettings, supplier
from services.runtime import db, terminal
from services.runtime.clock import set_clock
from services.runtime.kafka_client import client_options, partitions
from services.runtime.settings import Settings, Topics
from services.workers import SERVICES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
START = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


# --- statement import -------------------------------------------------------------------------


def gpc_file(n: int) -> bytes:
    header = (
        "0740000002001234561ISP Example s.r.o.  01122600000000012345+00000000062345+"
        "000000000000000000000000500000047011226"
    ).ljust(128)
    lines = [header]
    for i in range(n):
        contract = 100000 + i
        lines.append(
            f"075{'2001234561':0>16}{'2000145399':0>16}{i + 1:013d}{49900:012d}2"
            f"{contract:010d}0008000308{2026000000 + i:010d}011226{'Platba':<20}00203011226"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1250")


CAMT_ENTRY = """            <Ntry>
                <NtryRef>R{i}</NtryRef>
                <Amt Ccy="CZK">499.00</Amt>
                <CdtDbtInd>CRDT</CdtDbtInd>
                <Sts>BOOK</Sts>
                <BookgDt>
                    <DtTm>2026-12-01T11:54:12</DtTm>
                </BookgDt>
                <ValDt>
                    <DtTm>2026-12-01T11:54:12</DtTm>
                </ValDt>
                <BkTxCd>
                    <Prtry>
                        <Cd>10000107000</Cd>
                    </Prtry>
                </BkTxCd>
                <NtryDtls>
                    <TxDtls>
                        <Refs>
                            <MsgId>1</MsgId>
                            <AcctSvcrRef>T{i}</AcctSvcrRef>
                            <EndToEndId>{vs}</EndToEndId>
                        </Refs>
                        <RltdPties>
                            <DbtrAcct>
                                <Id>
                                    <Othr>
                                        <Id>131-3021140217</Id>
                                    </Othr>
                                </Id>
                                <Nm>Zákazník {i}</Nm>
                            </DbtrAcct>
                        </RltdPties>
                        <RltdAgts>
                            <DbtrAgt>
                                <FinInstnId>
                                    <Othr>
                                        <Id>0100</Id>
                                    </Othr>
                                </FinInstnId>
                            </DbtrAgt>
                        </RltdAgts>
                        <RmtInf>
                            <Strd>
                                <CdtrRefInf>
                                    <Ref>SS:{ss}</Ref>
                                </CdtrRefInf>
                            </Strd>
                        </RmtInf>
                        <AddtlTxInf>Platba</AddtlTxInf>
                    </TxDtls>
                </NtryDtls>
            </Ntry>
"""


def camt_file(lines: int) -> tuple[bytes, int]:
    """A camt.053 statement of about ``lines`` lines laid out as Raiffeisenbank CZ writes
    them (one element per line, 53 lines an entry; the real files in ../shared/data have
    50-65): the bytes and the number of entries."""
    n = max(1, lines // CAMT_ENTRY.count("\n"))
    entries = "".join(CAMT_ENTRY.format(i=i, vs=100000 + i, ss=2026000000 + i) for i in range(n))
    data = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:'
        'xsd:camt.053.001.02">\n<BkToCstmrStmt>\n<GrpHdr><MsgId>b</MsgId>'
        "<CreDtTm>2026-12-01T00:00:00</CreDtTm></GrpHdr>\n<Stmt>\n<Id>b</Id>\n"
        "<Acct><Id><IBAN>CZ1520100000002001234561</IBAN></Id><Ccy>CZK</Ccy></Acct>\n"
        f"{entries}</Stmt>\n</BkToCstmrStmt>\n</Document>\n"
    ).encode()
    return data, n


def bench_import(n: int) -> tuple[list[dict[str, Any]], dict[str, tuple[bytes, int]]]:
    """Parse an ``n``-line file of each format. A GPC line is a movement; a camt.053 file
    of ``n`` lines holds about n/53 entries, so both lines/s and entries/s are given.
    Returns the results and each format's file and movements."""
    out = []
    camt, entries = camt_file(n)
    files = {"gpc": (gpc_file(n), n), "camt053": (camt, entries)}
    for fmt, (data, count) in files.items():
        lines = data.count(b"\n")
        started = time.perf_counter()
        movements = parse_statement(data, f"bench.{fmt}", fmt)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        ok = len(movements) == count and sum(m.amount_minor for m in movements) == 49900 * count
        ok = ok and all(m.vs and m.ss for m in movements)
        out.append(
            {
                "scenario": f"import-parse-{fmt}",
                "n": lines,
                "movements": count,
                "seconds": round(seconds, 3),
                "throughput": round(lines / seconds),
                "unit": "lines/s",
                "movements_per_s": round(count / seconds),
                "target": 100_000,
                "target_met": lines / seconds >= 100_000,
                "outcome_ok": ok,
            }
        )
    return out, files


async def cpus_idle(below: float = 25.0, at_most: float = 60.0) -> float:
    """Wait until the machine's CPUs were less than ``below`` percent busy over half a
    second (at most ``at_most`` seconds); returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < at_most:
        busy = await asyncio.to_thread(psutil.cpu_percent, 0.5)
        if busy < below:
            break
    return time.perf_counter() - started


async def import_and_publish(
    stack: Stack, files: dict[str, tuple[bytes, int]], results: list[dict[str, Any]], prefix: str
) -> None:
    """Each file imported as ``billing import-statement`` does it: parsed, each movement
    recorded and its event written to the outbox in one transaction, the outbox published
    (``importer.record``, ``importer.publish_pending``), and the events counted on the
    topic. Each format goes to a topic of its own that no worker reads: the import is
    measured here, the pipeline after it by the payments scenario."""
    settings = Settings(database_url=stack.database_url, kafka_bootstrap_servers=stack.bootstrap)
    await db.migrate(stack.database_url, importer.SCHEMA)
    for fmt in files:
        await create_topic(stack.bootstrap, f"{prefix}.import.{fmt}")
    pool = await db.create_pool(stack.database_url, importer.SCHEMA, max_size=2)
    await cpus_idle()  # the workers just started: their start-up took 60% of the parse's cores
    try:
        for entry in results:
            fmt = entry["scenario"].removeprefix("import-parse-")
            data, count = files[fmt]
            topic = f"{prefix}.import.{fmt}"
            started = time.perf_counter()
            movements = parse_statement(data, f"bench.{fmt}", fmt)
            parsed = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                now = await importer.now_for(settings, conn)
                new = await importer.record(
                    conn, movements, f"bench.{fmt}", fmt, now, Topics(payments_received=topic)
                )
            recorded = time.perf_counter()
            published = await importer.publish_pending(settings, pool)
            seconds = time.perf_counter() - started
            on_topic = await topic_count(stack.bootstrap, topic, '"payment.received.v1"')
            entry |= {
                "published_seconds": round(seconds, 3),
                "published_split_s": {"parse": round(parsed - started, 3),
                                      "record": round(recorded - parsed, 3),
                                      "publish": round(seconds - (recorded - started), 3)},
                "published_lines_per_s": round(entry["n"] / seconds),
                "published_movements_per_s": round(count / seconds),
                "published": published, "on_topic": on_topic,
                "outcome_ok": entry["outcome_ok"] and new == published == on_topic == count,
            }  # fmt: skip
    finally:
        await pool.close()


# --- the stack --------------------------------------------------------------------------------


class Profiler:
    """``--profile``: py-spy records every worker (collapsed stacks) for the whole run; the
    summary lists where each spent its time, by function, self and inclusive."""

    def __init__(self, stack: Stack, out: Path) -> None:
        self.stack = stack
        self.out = out
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        assert self.stack.workers is not None
        self.out.mkdir(parents=True, exist_ok=True)
        for service, proc in self.stack.workers.procs.items():
            self.procs[service] = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
                 "--format", "raw", "--rate", "250", "--nonblocking",
                 "-o", str(self.out / f"{service}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for service, proc in self.procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raw = self.out / f"{service}.txt"
            if raw.exists():
                (self.out / f"{service}.top.txt").write_text(summarize(raw.read_text()))


def summarize(raw: str, top: int = 25) -> str:
    """Self and inclusive samples per function from py-spy's collapsed stacks; the idle
    event loop (``select``) is counted apart so the busy share is plain."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")
        ]
        total += n
        if "select" in frames[-1].split(" ")[0]:
            idle += n
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    busy = max(1, total - idle)
    lines = [f"samples {total}, idle (select) {idle}, busy {busy}", "", "self:"]
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / busy:6.1f}%  {f}")
    lines += ["", "inclusive:"]
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / busy:6.1f}%  {f}")
    return "\n".join(lines) + "\n"


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each worker, the broker, and PostgreSQL
    (all its processes: the server is shared, so an idle other database adds a little)."""
    out: dict[str, float] = {}
    workers = stack.workers.procs if stack.workers else {}
    pids = {name: proc.pid for name, proc in workers.items()}
    brokers = stack.broker.pids() if stack.broker is not None else []
    for i, pid in enumerate(brokers, 1):
        pids["broker" if len(brokers) == 1 else f"broker-{i}"] = pid
    for name, pid in pids.items():
        try:
            p = psutil.Process(pid)
            times = [p.cpu_times()] + [c.cpu_times() for c in p.children(recursive=True)]
        except psutil.Error:
            continue
        out[name] = sum(t.user + t.system for t in times)
    # Backends and autovacuum workers come and go: the postmaster's children_* times hold
    # the CPU of those that have exited (it reaps them), the live ones count their own.
    pg = 0.0
    for p in psutil.process_iter(["name", "ppid"]):
        if p.info["name"] in ("postgres", "postmaster"):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                pg += t.user + t.system
                if psutil.Process(p.info["ppid"]).name() not in ("postgres", "postmaster"):
                    pg += t.children_user + t.children_system  # the postmaster
    out["postgresql"] = pg
    return out


class RssSampler:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            assert self.stack.workers is not None
            for service, proc in self.stack.workers.procs.items():
                try:
                    rss = psutil.Process(proc.pid).memory_info().rss
                except psutil.Error:
                    continue
                self.peak[service] = max(self.peak.get(service, 0), rss)
            time.sleep(0.2)


class ChildPeak:
    """Peak RSS of this process's children whose command line holds every word of
    ``marker`` (a CLI the bench runs), sampled every 50 ms while the block runs."""

    def __init__(self, *marker: str) -> None:
        self.marker = marker
        self.rss = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildPeak:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.05):
            for child in me.children():
                with contextlib.suppress(psutil.Error):
                    if all(word in child.cmdline() for word in self.marker):
                        self.rss = max(self.rss, child.memory_info().rss)


def contact(i: int) -> dict[str, Any]:
    email = f"c{100000 + i}@example.com"
    return {"name": f"Customer {i}", "email": email, "categories": ["billing", "dunning"]}


def contracts_json(n: int, path: Path, emails: bool = False) -> None:
    """``n`` contracts from 100000 in a contracts file; with ``emails``, each with an e-mail
    contact for billing and dunning (the chaos run's notifications)."""
    items = [
        {
            "contract": str(100000 + i),
            "customer_name": f"Customer {i}",
            "currency": "CZK",
            "monthly_fee_minor": 49900,
            "due": {"day_of_month": 15},
            "contacts": [contact(i)] if emails else [],
            "subscribers": {"ipv4": [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"]},
        }
        for i in range(n)
    ]
    path.write_text(json.dumps({"contracts": items}), encoding="utf-8")


async def dunning_contracts(conn: asyncpg.Connection, base: int, n: int) -> None:
    """Contracts ``base`` .. ``base + n - 1`` in dunning's table (Czech, CZK), as their
    contract.upserted events would leave them."""
    await conn.execute(
        """INSERT INTO dunning.contracts (contract, country, currency)
           SELECT ($1 + g)::text, 'CZ', 'CZK' FROM generate_series(0, $2 - 1) g""",
        base, n,
    )  # fmt: skip


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of ascending values (nearest rank), rounded to 0.1."""
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def wait_for(url: str, query: str, expected: int, *args: Any, timeout: float = 600) -> None:
    """Poll another process's tables until ``query`` returns ``expected``."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while (got := await conn.fetchval(query, *args)) != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{query}: {got}, expected {expected}")
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def wait_outboxes_empty(url: str) -> None:
    await wait_for(
        url, "SELECT " + " + ".join(f"(SELECT count(*) FROM {s}.outbox)" for s in SERVICES), 0
    )


def kafka_options(bootstrap: str) -> dict[str, Any]:
    """The project's client options (``BILLING_KAFKA_*``: TLS, SASL) for the cluster at
    ``bootstrap``: a ``--kafka`` cluster is reached as the workers reach it."""
    return client_options(Settings(kafka_bootstrap_servers=bootstrap))


async def topic_count(bootstrap: str, topic: str, needle: str) -> int:
    """How many records on the topic contain ``needle`` (read from the start, up to the
    high watermarks: docs/performance.md#finding-22)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await end_offsets(consumer, parts)
        count = 0
        wanted = needle.encode()
        left = {tp for tp in parts if ends[tp] > 0}
        while left:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=10000)).items():
                count += sum(1 for r in records if r.value and wanted in r.value)
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        return count
    finally:
        await consumer.stop()


async def copy_limit(url: str, n: int) -> float:
    """COPY of ``n`` invoice rows as a billing run writes them, each with its document
    (lines, recapitulation, customer: a one-line tariff's, as the run's contracts have)."""
    dev: dict[str, Any] = {k.removeprefix("BILLING_").lower(): v for k, v in DEV_SUPPLIER.items()}
    who = supplier(InvoicingSettings(**dev))
    supplier_id = stored.supplier_row(who)[0]
    contract = bills.Contract(
        "1", True, 49900, "CZK", DueRule("day_of_month", 15), None, "CZ", "cs", False, "{}"
    )
    bill = bills.Bills(who, supplier_id, "2027-01", date(2027, 1, 1)).of(contract, 0)
    customer = db.Jsonb('{"name": null, "address": null}')
    rows = [
        (f"{2027000000 + i}", str(100000 + i), str(100000 + i), f"{2027000000 + i}", "2027-01",
         date(2027, 1, 1), date(2027, 1, 15), 49900, "CZK", datetime.now(UTC), "periodic",
         supplier_id, customer, *bill.columns)
        for i in range(n)
    ]  # fmt: skip
    conn = await db.connect(url)
    try:
        # a logged table like invoicing's (a temporary one would skip the WAL the run writes)
        await conn.execute("CREATE TABLE copy_limit (LIKE invoicing.invoices INCLUDING ALL)")
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "copy_limit",
            records=rows,
            columns=["invoice_number", "contract", "vs", "ss", "period", "issued_on", "due_on",
                     "amount_minor", "currency", "created_at", "kind", "supplier", "customer",
                     *bills.COLUMNS],
        )  # fmt: skip
        return time.perf_counter() - started
    finally:
        await conn.execute("DROP TABLE IF EXISTS copy_limit")
        await conn.close()


async def create_topic(bootstrap: str, name: str) -> None:
    """A topic of the bench's own, laid out as the system's are (partitions, replication)."""
    settings = Settings()
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)]
        )
    finally:
        await admin.close()


async def kafka_limit(bootstrap: str, n: int, size: int, topic: str) -> float:
    """Plain aiokafka: ``n`` records of ``size`` bytes produced and consumed on ``topic``,
    created first as the system's topics are (a cluster may refuse to create it on use)."""
    await create_topic(bootstrap, topic)
    value = b"x" * size
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", linger_ms=2)
    consumer = AIOKafkaConsumer(topic, **kafka_options(bootstrap), auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=str(i).encode()) for i in range(n)]
        await asyncio.gather(*futures)
        got = 0
        while got < n:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                got += len(records)
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


async def run_stack_scenarios(stack: Stack, n: int, tmp: Path, prefix: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    s = Scenario(stack, out=lambda _l: None)
    conn = await db.connect(stack.database_url)
    try:
        await set_clock(conn, START)
    finally:
        await conn.close()
    path = tmp / "contracts.json"
    contracts_json(n, path)
    started = time.perf_counter()
    with ChildPeak("contracts", "load") as load_peak:
        out = await s.cli("contracts", "load", str(path))
    seconds = time.perf_counter() - started
    await s.quiet(timeout=600)
    conn = await asyncpg.connect(stack.database_url)
    try:  # loaded, and every contract announced to and applied by the other services
        known = [
            await conn.fetchval(f"SELECT count(*) FROM {schema}.contracts")
            for schema in ("invoicing", "payments", "dunning")
        ]
    finally:
        await conn.close()
    rss = load_peak.rss
    results.append(
        {
            "scenario": "contracts-load", "n": n, "seconds": round(seconds, 3),
            "throughput": round(n / seconds), "unit": "contracts/s",
            "peak_rss_mb": round(rss / 2**20, 1), "file_mb": round(path.stat().st_size / 2**20, 1),
            "known_by": dict(zip(("invoicing", "payments", "dunning"), known, strict=True)),
            "target": "CLI <= 250 MB, as a worker", "target_met": rss <= 250 * 2**20,
            "outcome_ok": f"{n} contracts read, {n} new or changed" in out
            and known == [n, n, n],
        }
    )  # fmt: skip

    # The invoices to pay (the billing run at scale is measured last, on its own contracts).
    out = await s.cli("invoicing", "run", "--period", "2026-12")
    await s.quiet(timeout=600)
    if f"{n} invoices issued" not in out:
        raise SystemExit(f"billing run for the payments scenario: {out[-300:]}")

    # Payments: N exact payments, matched and settled.
    conn = await asyncpg.connect(stack.database_url)
    try:
        invoices = await conn.fetch("SELECT contract, ss FROM invoicing.invoices")
    finally:
        await conn.close()
    now = START
    events = []
    for i, inv in enumerate(invoices):
        data = PaymentReceived(
            account="2001234561/2010", bank_tx_id=f"b{i}", booked_on=now.date(),
            value_on=now.date(), amount_minor=49900, currency="CZK", vs=inv["contract"],
            ss=inv["ss"], ks="0308", counterparty_account="19-2000145399/0800",
            counterparty_name="Bench", message="bench",
        )  # fmt: skip
        value = event_of("/bench", inv["contract"], data, now).model_dump_json().encode()
        events.append((inv["contract"].encode(), value))
    size = sum(len(v) for _, v in events) // len(events)
    producer = AIOKafkaProducer(**client_options(stack.settings()), acks="all", linger_ms=5)
    await producer.start()
    cpu_before = cpu_seconds(stack)
    started = time.perf_counter()
    try:
        futures = [await producer.send(Topics().payments_received, v, key=k) for k, v in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    # Done when every service has applied the outcome: payments settled each invoice,
    # dunning re-evaluated each contract on it, invoicing marked it paid, and nothing is
    # left to publish. (Waiting for committed offsets instead would add Faust's commit
    # interval, 2.8 s, to the figure.)
    outcome = (
        "SELECT (SELECT count(*) FROM payments.invoices WHERE settled)"
        " + (SELECT count(*) FROM dunning.invoices WHERE settled)"
        " + (SELECT count(*) FROM invoicing.invoices WHERE status = 'paid')"
        # re-evaluated: nothing unpaid, so no check is planned any more
        " + (SELECT count(*) FROM dunning.state WHERE next_check_at IS NULL)"
    )
    await wait_for(stack.database_url, outcome, 4 * n)
    await wait_outboxes_empty(stack.database_url)
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(stack)
    cpu_us = {
        k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / n * 1e6)
        for k in sorted(cpu_after)
        if cpu_after[k] - cpu_before.get(k, 0.0) > 0
    }
    await s.quiet()
    limit = await kafka_limit(stack.bootstrap, n, size, f"{prefix}.limit.{uuid.uuid4().hex[:6]}")
    conn = await asyncpg.connect(stack.database_url)
    try:
        settled = await conn.fetchval("SELECT count(*) FROM payments.invoices WHERE settled")
        paid = await conn.fetchval("SELECT count(*) FROM invoicing.invoices WHERE status = 'paid'")
    finally:
        await conn.close()
    results.append(
        {
            "scenario": "payments-pipeline", "n": n, "seconds": round(seconds, 3),
            "throughput": round(n / seconds), "unit": "payments/s",
            "limit": f"aiokafka produce+consume of {n} records of {size} bytes",
            "limit_seconds": round(limit, 3), "limit_throughput": round(n / limit),
            "ratio": round(limit / seconds, 3), "target": ">= 0.5 of the limit's throughput",
            "target_met": limit / seconds >= 0.5, "outcome_ok": settled == n and paid == n,
            "cpu_us_per_payment": cpu_us, "cpu_cores_busy": round(sum(cpu_us.values()) * n
                                                                  / 1e6 / seconds, 2),
        }
    )  # fmt: skip
    return results


BATCH_SAMPLES = {  # /metrics sample -> what batch_stats calls it
    "billing_batch_processing_seconds_count": "batches",
    "billing_batch_processing_seconds_sum": "batch_s",
    "billing_event_age_seconds_count": "events",
    "billing_event_age_seconds_sum": "age_s",
}


async def batch_stats(stack: Stack) -> dict[str, dict[str, float]]:
    """Each worker's batch counters from its /metrics: batches applied, their seconds, the
    events applied, and the age of those events when committed (broker time to commit)."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as http:
        for service in SERVICES:
            url = f"http://127.0.0.1:{stack.metrics_port(service)}/metrics"
            async with http.get(url) as resp:
                text = await resp.text()
            stats = dict.fromkeys(BATCH_SAMPLES.values(), 0.0)
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in BATCH_SAMPLES:
                        stats[BATCH_SAMPLES[sample.name]] += sample.value
            out[service] = stats
    return out


def batch_breakdown(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per worker over a phase: mean events a batch, mean milliseconds to apply one, and the
    mean age of an event when its batch committed (the consumer's share of a hop; the rest
    of the hop is the relay publishing)."""
    out = {}
    for service, a in after.items():
        d = {k: v - before[service][k] for k, v in a.items()}
        if d["batches"] and d["events"]:
            out[service] = {
                "events_per_batch": round(d["events"] / d["batches"], 1),
                "batch_ms": round(1000 * d["batch_s"] / d["batches"], 1),
                "event_age_at_commit_ms": round(1000 * d["age_s"] / d["events"], 1),
            }
    return out


async def reconnect_latency(
    stack: Stack, loaded: int, others: int, tmp: Path, idle: int = 50
) -> dict[str, Any]:
    """``loaded`` contracts in suspension pay at a steady 200/s while ``others`` pay at
    1,000/s; latency from each payment's publication to its ``network.access`` restore.
    Then, on a quiet system, ``idle`` more pay at 20/s: the chain's own latency."""
    import aiohttp

    suspended = loaded + idle
    s = Scenario(stack, out=lambda _l: None)  # the clock stays where the scenarios left it
    items = []
    for i in range(suspended + others):
        ip = f"127.2.{i >> 8}.{i & 255}" if i < suspended else f"10.9.{i >> 8}.{i & 255}"
        items.append(
            {"contract": str(300000 + i), "customer_name": f"R{i}", "currency": "CZK",
             "monthly_fee_minor": 49900, "due": {"day_of_month": 15}, "contacts": [],
             "subscribers": {"ipv4": [ip]}}
        )  # fmt: skip
    path = tmp / "reconnect.json"
    path.write_text(json.dumps({"contracts": items}), encoding="utf-8")
    await s.cli("contracts", "load", str(path))
    await s.cli("invoicing", "run", "--period", "2026-12")
    await s.quiet()

    async def jump(to: datetime) -> None:  # forward only; dunning catches up on its own
        conn = await db.connect(stack.database_url)
        try:
            await set_clock(conn, to)
        finally:
            await conn.close()
        await s.quiet()

    await jump(datetime(2026, 12, 25, 7, 0, tzinfo=UTC))  # due + 10 days: notices
    port = stack.cfg.notice_port
    for i in range(suspended):  # each suspended-to-be customer confirms from its address
        ip = f"127.2.{i >> 8}.{i & 255}"
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(ip, 0)),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # the form's session cookie
        ) as http:
            async with http.get(f"http://127.0.0.1:{port}/") as resp:
                page = await resp.text()
            token = page.split('name="csrf" value="')[1].split('"')[0]
            async with http.post(f"http://127.0.0.1:{port}/acknowledge", data={"csrf": token}):
                pass
    await s.quiet()
    await jump(datetime(2027, 1, 4, 8, 0, tzinfo=UTC))  # confirmed + 10 days: suspended
    conn = await asyncpg.connect(stack.database_url)
    try:
        invoices = {
            r["contract"]: r["ss"]
            for r in await conn.fetch("SELECT contract, ss FROM invoicing.invoices")
        }
        cut = await conn.fetchval(
            "SELECT count(*) FROM provisioning.access WHERE state = 'suspended'"
        )
        states = dict(
            await conn.fetch(
                "SELECT state, count(*) FROM provisioning.access"
                " WHERE contract::int >= 300000 GROUP BY state"
            )
        )
        acks = await conn.fetchval("SELECT count(*) FROM provisioning.acknowledgements")
        print(f"reconnect setup: access states {states}, acknowledgements {acks}", flush=True)
    finally:
        await conn.close()
    if cut < suspended:
        return {
            "scenario": "reconnect-latency",
            "n": suspended,
            "target": "p50 <= 50 ms, p99 <= 250 ms",
            "target_met": False,
            "outcome_ok": False,
            "error": f"only {cut} suspended",
        }

    def event(contract: str, n: int) -> bytes:
        data = PaymentReceived(
            account="2001234561/2010", bank_tx_id=f"r{contract}", booked_on=date(2027, 1, 5),
            value_on=date(2027, 1, 5), amount_minor=49900, currency="CZK", vs=contract,
            ss=invoices[contract],
        )  # fmt: skip
        return event_of("/bench", contract, data, datetime.now(UTC)).model_dump_json().encode()

    sent: dict[str, float] = {}
    restored: dict[str, float] = {}
    consumer = AIOKafkaConsumer(**client_options(stack.settings()))
    await consumer.start()
    topic = Topics().network_access
    parts = await partitions(consumer, [topic])
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)  # resolved now, before any payment is sent
    producer = AIOKafkaProducer(**client_options(stack.settings()), acks="all", linger_ms=1)
    await producer.start()

    async def watch(measured: list[str]) -> None:
        while any(c not in restored for c in measured):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    data = json.loads(r.value)["data"]
                    c = data["contract"]
                    if data["state"] == "active" and c in sent and c not in restored:
                        restored[c] = r.timestamp / 1000

    async def pace(contracts: list[str], rate: float, measured: bool) -> None:
        t0 = time.monotonic()
        for n, c in enumerate(contracts):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            value = event(c, n)
            if measured:
                sent[c] = time.time()
            await producer.send(Topics().payments_received, value, key=c.encode())

    hops: dict[str, list[tuple[float, str]]] = {}  # contract -> (timestamp, "topic type")
    # hops named by the contract's topic names, also where a run's own are prefixed (--kafka)
    named = {getattr(Topics(), f): info.default for f, info in Topics.model_fields.items()}

    async def trace(tracer: AIOKafkaConsumer, contracts: set[str]) -> None:
        """Where the quiet chain's time goes: each hop's record as the broker stamped it."""
        while True:
            for records in (await tracer.getmany(timeout_ms=100)).values():
                for r in records:  # the others' records unread: the bench takes CPU too
                    c = (r.key or b"").decode()
                    if c in contracts:
                        event = json.loads(r.value)
                        hops.setdefault(c, []).append(
                            (r.timestamp / 1000, f"{named[r.topic]} {event['type']}")
                        )

    def percentiles(measured: list[str]) -> tuple[float, float, float]:
        lat = sorted((restored[c] - sent[c]) * 1000 for c in measured if c in restored)

        return quantile(lat, 0.5), quantile(lat, 0.99), round(lat[-1], 1)

    cut_contracts = [str(300000 + i) for i in range(loaded)]
    idle_contracts = [str(300000 + i) for i in range(loaded, suspended)]
    other_contracts = [str(300000 + i) for i in range(suspended, suspended + others)]
    duration = loaded / 200
    tracer = AIOKafkaConsumer(**client_options(stack.settings()))
    await tracer.start()
    try:
        traced = await partitions(
            tracer, [Topics().payments, Topics().dunning, Topics().network_access]
        )
        tracer.assign(traced)
        await tracer.seek_to_end(*traced)
        for tp in traced:
            await tracer.position(tp)
        tracing = asyncio.create_task(trace(tracer, set(cut_contracts + idle_contracts)))
        watcher = asyncio.create_task(watch(cut_contracts))
        stats_before = await batch_stats(stack)
        await asyncio.gather(
            pace(cut_contracts, 200, True),
            pace(other_contracts[: int(duration * 1000)], 1000, False),
        )
        await asyncio.wait_for(watcher, timeout=120)
        loaded_batches = batch_breakdown(stats_before, await batch_stats(stack))
        await s.quiet()
        watcher = asyncio.create_task(watch(idle_contracts))
        await pace(idle_contracts, 20, True)
        await asyncio.wait_for(watcher, timeout=60)
        await asyncio.sleep(0.5)
        tracing.cancel()
    finally:
        await tracer.stop()
        await producer.stop()
        await consumer.stop()
    p50, p99, top = percentiles(cut_contracts)
    idle50, idle99, idle_top = percentiles(idle_contracts)

    def hop_medians(contracts: list[str]) -> dict[str, float]:
        steps: dict[str, list[float]] = {}
        for c in contracts:
            # the first record of each kind after the payment (a suspension published late
            # in the set-up is not a hop)
            first: dict[str, float] = {}
            for ts, name in sorted(hops.get(c, [])):
                if ts >= sent[c] - 0.01:
                    first.setdefault(name, ts)
            seen = sorted((ts, name) for name, ts in first.items())
            prev, prev_name = sent[c], "payment sent"
            for ts, name in seen:
                steps.setdefault(f"{prev_name} -> {name}", []).append((ts - prev) * 1000)
                prev, prev_name = ts, name
        return {k: round(sorted(v)[len(v) // 2], 1) for k, v in steps.items() if len(v) > 5}

    return {
        "scenario": "reconnect-latency", "n": loaded, "background_per_s": 1000,
        "p50_ms": p50, "p99_ms": p99, "max_ms": top,
        "idle_n": idle, "idle_p50_ms": idle50, "idle_p99_ms": idle99, "idle_max_ms": idle_top,
        "hops_p50_ms": hop_medians(cut_contracts), "idle_hops_p50_ms": hop_medians(idle_contracts),
        "loaded_batches": loaded_batches,
        "target": "p50 <= 50 ms, p99 <= 250 ms",
        "target_met": p50 <= 50 and p99 <= 250,
        "outcome_ok": cut == suspended and all(c in restored for c in cut_contracts)
        and all(c in restored for c in idle_contracts),
    }  # fmt: skip


BILL_BASE = 10_000_000  # contract numbers of the billing run at scale (eight digits)
PROBE_BASE = 9_000_000  # contracts whose payments arrive during the billing run


class PaymentProbe:
    """Payments arriving while a billing run is being published, at ``rate`` a second:
    each names a contract dunning knows and payments does not, so payments leaves it
    unmatched and dunning records it (``unmatched_payments``). Those are the two hops a
    restore takes, each queued behind the run's invoice.issued in a worker that consumes
    both topics. The latency is from the payment's publication to dunning's record
    (polled every 20 ms)."""

    def __init__(self, stack: Stack, rate: float = 20.0, most: int = 10_000) -> None:
        self.stack = stack
        self.rate = rate
        self.most = most
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.stop = asyncio.Event()

    async def prepare(self, conn: asyncpg.Connection) -> None:
        await dunning_contracts(conn, PROBE_BASE, self.most)

    async def publish(self) -> None:
        producer = AIOKafkaProducer(**client_options(self.stack.settings()), acks="all")
        await producer.start()
        try:
            i = 0
            start = time.perf_counter()
            while not self.stop.is_set() and i < self.most:
                vs = str(PROBE_BASE + i)
                data = PaymentReceived(
                    account="2001234561/2010", bank_tx_id=f"probe-{i}", booked_on=START.date(),
                    value_on=START.date(), amount_minor=49900, currency="CZK", vs=vs, ss=None,
                    ks=None, counterparty_account="19-2000145399/0800",
                    counterparty_name="Probe", message="probe",
                )  # fmt: skip
                value = event_of("/bench", vs, data, START)
                self.sent[data.bank_tx_id] = time.time()
                await producer.send_and_wait(
                    Topics().payments_received, value.model_dump_json().encode(), key=vs.encode()
                )
                i += 1
                await asyncio.sleep(max(0.0, start + i / self.rate - time.perf_counter()))
        finally:
            await producer.stop()

    async def watch(self, timeout: float = 900) -> None:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            deadline = time.monotonic() + timeout
            while not (self.stop.is_set() and len(self.seen) >= len(self.sent)):
                if time.monotonic() > deadline:
                    return
                now = time.time()
                for r in await conn.fetch(
                    "SELECT bank_tx_id FROM dunning.unmatched_payments"
                    " WHERE bank_tx_id LIKE 'probe-%'"
                ):
                    self.seen.setdefault(r["bank_tx_id"], now)
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def summary(self) -> dict[str, Any]:
        ms = sorted((self.seen[k] - t) * 1000 for k, t in self.sent.items() if k in self.seen)
        return {
            "n": len(self.sent), "applied": len(ms), "rate_per_s": self.rate,
            "p50_ms": quantile(ms, 0.5) if ms else None,
            "p90_ms": quantile(ms, 0.9) if ms else None,
            "p99_ms": quantile(ms, 0.99) if ms else None, "max_ms": ms[-1] if ms else None,
        }  # fmt: skip


async def billing_at_scale(stack: Stack, n: int) -> dict[str, Any]:
    """A billing run over ``n`` contracts: invoiced and every invoice.issued published.
    The contracts are written straight into invoicing's and dunning's tables, as a contracts
    load would leave them; invoice numbers are YY + eight digits (over 999,999 a year). Limit:
    PostgreSQL COPY of the same invoice rows into a table like invoicing's."""
    s = Scenario(stack, out=lambda _l: None)
    # start from a settled system: not while notify still works through the sweep's reminders
    settle = await s.quiet(timeout=900)
    # The limit first, on the settled system. Measured after the run, it competed with
    # payments and dunning still working through the run's million events: 4.5-5.5 s on
    # one hour's runs, with as many seconds as they happened to take from it.
    limit = await copy_limit(stack.database_url, n)
    conn = await asyncpg.connect(stack.database_url)
    try:
        # the other scenarios' contracts are billed too: add as many as make n in all
        known = await conn.fetchval("SELECT count(*) FROM invoicing.contracts")
        await conn.execute(
            """INSERT INTO invoicing.contracts (contract, data, active, monthly_fee_minor,
                                                currency, due_kind, due_value, updated_at)
               SELECT ($1 + g)::text,
                      jsonb_build_object('contract', ($1 + g)::text, 'currency', 'CZK'),
                      true, 49900, 'CZK', 'day_of_month', 15, now()
               FROM generate_series(0, $2 - 1) g""",
            BILL_BASE, n - known,
        )  # fmt: skip
        # and to dunning, as their contract.upserted events would: it decides each contract
        # again as its invoice arrives (a contract it does not know yet it leaves be)
        await dunning_contracts(conn, BILL_BASE, n - known)
        probe = PaymentProbe(stack)
        await probe.prepare(conn)
        await conn.execute("ANALYZE invoicing.contracts, dunning.contracts")
        cpu_before = cpu_seconds(stack)
        probing = [asyncio.create_task(probe.publish()), asyncio.create_task(probe.watch())]
        cli_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with ChildPeak("invoicing", "run") as cli_peak:
            out = await s.cli(
                "invoicing", "run", "--period", "2027-03", "--issued-on", "2027-03-01",
                env={"BILLING_INVOICE_NUMBER_STYLE": "yy8"},
            )  # fmt: skip
        committed = time.perf_counter() - started
        cli_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        await wait_for(stack.database_url, "SELECT count(*) FROM invoicing.outbox", 0)
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(stack)
        probe.stop.set()
        # and until every consumer has applied them (dunning has decided each contract again)
        await s.quiet(timeout=900)
        applied = time.perf_counter() - started
        await asyncio.gather(*probing)
        issued = await conn.fetchval(
            "SELECT count(*) FROM invoicing.invoices WHERE period = '2027-03'"
            " AND invoice_number LIKE '27%' AND length(invoice_number) = 10"
        )
        numbers = await conn.fetchrow(
            "SELECT min(invoice_number)::bigint AS lo, max(invoice_number)::bigint AS hi"
            " FROM invoicing.invoices WHERE period = '2027-03'"
        )
    finally:
        await conn.close()
    published = await topic_count(stack.bootstrap, Topics().invoices, '"period":"2027-03"')
    gapless = numbers["hi"] - numbers["lo"] + 1 == n
    return {
        "scenario": "billing-run", "n": n, "seconds": round(seconds, 3),
        "throughput": round(n / seconds), "unit": "invoices/s",
        "limit": "PostgreSQL COPY of the same rows", "limit_seconds": round(limit, 3),
        "ratio": round(seconds / limit, 2), "target": "<= 60 s and <= 5x COPY",
        "target_met": seconds <= 60 and seconds <= 5 * limit,
        "issued": issued, "published": published, "gapless": gapless,
        "invoiced_seconds": round(committed, 3), "applied_seconds": round(applied, 3),
        "cli_peak_rss_mb": round(cli_peak.rss / 2**20, 1),
        "settled_before_s": round(settle, 1),
        # payments arriving meanwhile: from publication to dunning's record of each
        "payments_meanwhile": probe.summary(),
        # CPU seconds spent during the run: the CLI, the workers (invoicing's relay
        # publishes; the others consume invoice.issued meanwhile), the broker, PostgreSQL
        "cpu_seconds": {"cli": round(cli_after.ru_utime + cli_after.ru_stime
                                     - cli_before.ru_utime - cli_before.ru_stime, 1)}
        | {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in sorted(cpu_after.items())},
        "outcome_ok": f"{n} invoices issued" in out and issued == n and gapless
        and published == n and len(probe.seen) == len(probe.sent) > 0,
    }  # fmt: skip


SWEEP_BASE = 5_000_000  # contract numbers of the sweep, apart from the other scenarios


async def dunning_sweep(stack: Stack, n: int) -> dict[str, Any]:
    """``n`` contracts known to dunning, every tenth with an invoice three days overdue
    tomorrow: advance the shared clock one day and time until every due decision is made
    and its event published. The contracts are written straight into dunning's (and
    notify's) tables, as if their events had been applied: the sweep is what is measured,
    not a million contract events before it."""
    s = Scenario(stack, out=lambda _l: None)
    day = datetime(2027, 2, 1, 7, 0, tzinfo=UTC)  # Monday 08:00 in Prague
    sweep_at = datetime(2027, 2, 2, 7, 0, tzinfo=UTC)  # Tuesday, a working day
    midnight = datetime(2027, 2, 1, 23, 0, tzinfo=UTC)  # Tuesday 00:00 in Prague
    overdue = n // 10
    conn = await db.connect(stack.database_url)
    try:
        await set_clock(conn, day)
    finally:
        await conn.close()
    await s.quiet()  # the other scenarios' contracts react to the jump first
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with conn.transaction():
            await dunning_contracts(conn, SWEEP_BASE, n)
            await conn.execute(
                """INSERT INTO notify.contacts (contract, customer_name, language, contacts)
                   SELECT ($1 + g)::text, 'Sweep ' || g, 'cs', '[]'::jsonb
                   FROM generate_series(0, $2 - 1) g""",
                SWEEP_BASE, n,
            )  # fmt: skip
            # every contract has an invoice: paid, or (every tenth) due on 29 January
            await conn.execute(
                """INSERT INTO dunning.invoices (invoice_number, contract, vs, ss, due_on,
                                                 amount_minor, open_minor, currency, settled)
                   SELECT (9000000000 + g)::text, ($1 + g)::text, ($1 + g)::text,
                          (9000000000 + g)::text, date '2027-01-29', 49900,
                          CASE WHEN g % 10 = 0 THEN 49900 ELSE 0 END, 'CZK', g % 10 <> 0
                   FROM generate_series(0, $2 - 1) g""",
                SWEEP_BASE, n,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO dunning.state (contract, stage, why, next_check_at, updated_at)
                   SELECT ($1 + g)::text, 'active', 'overdue, nothing due yet', $3, $4
                   FROM generate_series(0, $2 - 1, 10) g""",
                SWEEP_BASE, n, midnight, day,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO dunning.timers (key, due_at)
                   SELECT ($1 + g)::text, $3 FROM generate_series(0, $2 - 1, 10) g""",
                SWEEP_BASE, n, midnight,
            )  # fmt: skip
        await conn.execute("ANALYZE dunning.contracts, dunning.invoices, dunning.state")
        cpu_before = cpu_seconds(stack)
        started = time.perf_counter()
        await set_clock(conn, sweep_at)
        # the sweep's contracts are the only seven-digit ones
        decided = (
            "SELECT count(*) FROM dunning.actions WHERE decided_at >= $1"
            " AND length(contract) = 7 AND kind = 'reminder' AND step = 'reminder-1'"
        )
        await wait_for(stack.database_url, decided, overdue, sweep_at)
        await wait_for(stack.database_url, "SELECT count(*) FROM dunning.outbox", 0)
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(stack)
        actions = await conn.fetchval(
            "SELECT count(*) FROM dunning.actions WHERE length(contract) = 7"
        )
        published = await topic_count(
            stack.bootstrap, Topics().dunning, '"type":"reminder.requested.v1"'
        )
    finally:
        await conn.close()
    return {
        "scenario": "dunning-sweep", "n": n, "overdue": overdue, "seconds": round(seconds, 3),
        "throughput": round(overdue / seconds), "unit": "decisions/s",
        "target": "<= 60 s", "target_met": seconds <= 60,
        "outcome_ok": actions == overdue and published >= overdue,
        # what each process spent in the sweep's window (notify works through the reminders
        # as they are published, on the same two cores)
        "cpu_seconds": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1)
                        for k in sorted(cpu_after)},
    }  # fmt: skip


def own_topics_and_groups(prefix: str) -> None:
    """On a shared cluster, the run's topics and consumer groups are named under ``prefix``
    (``bench-1a2b3c.payments.received``, group ``bench-1a2b3c-payments``): through the
    environment, for this process, the workers and the commands it starts."""
    for field, info in Topics.model_fields.items():
        os.environ[f"BILLING_TOPIC_{field.upper()}"] = f"{prefix}.{info.default}"
    os.environ["BILLING_GROUP_PREFIX"] = prefix


async def delete_own_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic named under ``prefix``; return their names. (Kafka drops the
    run's consumer groups itself, offsets.retention.minutes after their last commit.)"""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        own = sorted(t for t in await admin.list_topics() if t.startswith(f"{prefix}."))
        if own:
            await admin.delete_topics(own)
        return own
    finally:
        await admin.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller N, under 2 minutes")
    p.add_argument(
        "--profile", action="store_true", help="py-spy every worker into bench/profiles/"
    )
    p.add_argument(
        "--only",
        default="import,payments,reconnect,sweep,billing,traffic,cdr",
        help="comma-separated scenarios to run (payments always sets up its contracts)",
    )
    p.add_argument("--payments", type=int, help="N of the payments scenario")
    p.add_argument(
        "--reconnect", type=int, help="N of the reconnect scenario (a longer loaded phase)"
    )
    p.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        help="run on this Kafka cluster, not on the embedded Kafka node (own topics and"
        " groups, deleted topics at the end; BILLING_TOPIC_REPLICATION_FACTOR applies)",
    )
    args = p.parse_args()
    run_id = uuid.uuid4().hex[:6]
    prefix = f"bench-{run_id}" if args.kafka else "bench"
    if args.kafka:
        own_topics_and_groups(prefix)
    only = set(args.only.split(","))
    n_import = 20_000 if args.quick else 100_000
    n_stack = args.payments or (2_000 if args.quick else 100_000)
    n_sweep = 100_000 if args.quick else 1_000_000
    n_bill = 20_000 if args.quick else 1_000_000
    results, files = bench_import(n_import) if "import" in only else ([], {})
    run_dir = ROOT / ".run" / "bench"
    # BILLING_DATABASE_URL names a server for the run's own database; without it the run
    # starts an embedded PostgreSQL in its run folder, as `make demo` does
    url: str | None = os.environ.get("BILLING_DATABASE_URL")
    if url:
        url = f"{url.rpartition('/')[0]}/billing_bench_{run_id}"
    stack = isolated_stack(run_dir, url, bootstrap=args.kafka)
    sampler = RssSampler(stack)
    profiler = Profiler(stack, ROOT / "bench" / "profiles")
    broker_name = "?"
    # start, payments (always), and each other scenario asked for
    steps = 2 + len(only & {"import", "reconnect", "sweep", "billing", "traffic", "cdr"})
    progress = terminal.Progress("bench: steps done", steps)

    def step(done: str) -> None:
        progress.what = f"bench: {done} done, steps"
        progress.advance()

    try:
        stack.start_infrastructure()
        broker_name = stack.broker.name if stack.broker else "?"
        stack.start_workers()
        sampler.thread.start()
        if args.profile:
            profiler.start()
        step("start")
        if files:
            asyncio.run(import_and_publish(stack, files, results, prefix))
            step("import")
        results += asyncio.run(run_stack_scenarios(stack, n_stack, run_dir, prefix))
        step("payments")
        if "reconnect" in only:
            loaded = args.reconnect or (100 if args.quick else 500)
            others = loaded * (5 if args.quick else 10)  # half of them pay, at 1,000/s
            results.append(asyncio.run(reconnect_latency(stack, loaded, others, run_dir)))
            step("reconnect")
        if "sweep" in only:
            results.append(asyncio.run(dunning_sweep(stack, n_sweep)))
            step("sweep")
        if "billing" in only:
            results.append(asyncio.run(billing_at_scale(stack, n_bill)))
            step("billing")
        if "traffic" in only:
            from bench.traffic import traffic_ingest

            results += asyncio.run(
                traffic_ingest(stack.database_url, 10_000 if args.quick else 100_000)
            )
            step("traffic")
        if "cdr" in only:
            n_cdr = 50_000 if args.quick else 1_000_000
            results.append(asyncio.run(cdr.scenario(stack.database_url, n_cdr, run_dir)))
            step("cdr")
    finally:
        progress.close()
        sampler.stop.set()
        profiler.stop()
        stack.stop()
        if url:
            asyncio.run(db.drop_database(url))
        if args.kafka:
            asyncio.run(delete_own_topics(args.kafka, prefix))
    for service, rss in sorted(sampler.peak.items()):
        results.append(
            {
                "scenario": f"memory-{service}", "n": n_stack, "peak_rss_mb": round(rss / 2**20, 1),
                "target": "<= 250 MB", "target_met": rss <= 250 * 2**20, "outcome_ok": True,
            }
        )  # fmt: skip
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "broker": f"Kafka at {args.kafka}" if args.kafka else broker_name,
    }
    RESULTS.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"{'scenario':<26} {'N':>8} {'seconds':>8} {'throughput':>14} {'ratio':>7}  target")
    for r in results:
        if "throughput" in r:
            tp = f"{r['throughput']} {r['unit']}"
        elif "p50_ms" in r:
            tp = f"p50 {r['p50_ms']} p99 {r['p99_ms']} ms (idle: p50 {r['idle_p50_ms']})"
        else:
            tp = f"{r.get('peak_rss_mb')} MB"
        mark = "ok" if r["target_met"] else "MISSED"
        check = "" if r["outcome_ok"] else "  OUTCOME WRONG"
        print(
            f"{r['scenario']:<26} {r['n']:>8} {r.get('seconds', ''):>8} {tp:>14} "
            f"{r.get('ratio', ''):>7}  {r['target']} ({mark}){check}"
        )
    if not all(r["outcome_ok"] for r in results):
        raise SystemExit("an outcome check failed: the figures above do not count")


if __name__ == "__main__":
    main()
