"""``billing``: the operator's command line.

billing run                          the whole system on the embedded stack (make run)
billing demo                         the three-contract scenario on the test clock
billing contracts load FILE          contracts, contacts, subscribers from JSON or CSV
billing invoicing run --period P     issue the month's invoices
billing invoices [--contract C]      list invoices
billing payment publish ...          publish one payments.received event (manual entry)
billing import-statement FILE        import a bank statement (GPC, camt.053, MT940, Fio, CSV)
billing fio fetch                    fetch and import from Fio banka's API (BILLING_FIO_TOKEN_FILE)
billing payments unmatched|show|assign  the operators' queue of unmatched payments
billing gear nftables ...            the reference network gear (Linux nftables)
billing clock show|set|advance       the shared test clock (test/demo mode only)
billing dunning explain C            where a contract stands and what happens next
billing dunning preview --on DATE    who would be reminded, noticed, suspended ... that day
billing dunning postpone|exempt C    an operator's postponement or exemption, with a reason
billing notify log C                 messages sent to a contract
billing notify preview KIND --lang L one message rendered (text, HTML, SMS)
billing audit log [C] [--json]       what operators did (exempt, lift, postpone, assign, load, run)
billing migrate / topics             set-up steps `billing run` also does

Commands that read (invoices, payments unmatched|show, clock show, dunning explain|preview,
notify log|preview) print JSON with --json. Long commands show their progress on stderr when
it is a terminal. Exit codes (services/runtime/errors.py): 0 done, 64 usage, 65 bad input,
66 not found, 69 PostgreSQL or Kafka unavailable, 70 internal error, 74 I/O error, 75 try
again, 78 bad configuration, 130 interrupted. --debug shows the traceback of a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import asyncpg

from services.runtime import audit, db, terminal
from services.runtime.clock import (
    advance_clock,
    make_clock,
    read_clock,
    set_clock,
)
from services.runtime.errors import EX_USAGE, BadConfig, BadInput, Unavailable
from services.runtime.settings import SERVICES, Settings, get_settings, get_topics

ROOT = Path(__file__).resolve().parent.parent


# The command line's own error before services/runtime/errors.py: refused input (65).
CliError = BadInput


class _Parser(argparse.ArgumentParser):
    """argparse's refusals exit 64 (EX_USAGE), as sysexits.h has it, rather than 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: {message}\n")


@contextlib.asynccontextmanager
async def _session(schema: str) -> AsyncIterator[tuple[asyncpg.Connection, datetime]]:
    """A connection to ``schema`` and the time it is now (the shared test clock's, where on)."""
    settings = get_settings()
    conn = await db.connect(settings.database_url, schema)
    try:
        clock = make_clock(settings)
        await clock.refresh(conn)
        yield conn, clock.now()
    finally:
        await conn.close()


def cmd_contracts_load(args: argparse.Namespace) -> None:
    from services.invoicing import contracts_file, service

    operator = audit.operator_name(args.operator)
    path = Path(args.file).resolve()

    async def go() -> tuple[int, int]:
        async with _session("invoicing") as (conn, now), conn.transaction():
            with terminal.Progress("contracts loaded") as progress:
                total, changed = await service.load_contracts_file(
                    conn, contracts_file.records(Path(args.file)), now, progress=progress.update
                )
            details = {"file": str(path), "read": total, "changed": changed}
            await audit.record(conn, now, operator, "contracts-load", None, details)
            return total, changed

    total, changed = asyncio.run(go())
    print(f"{total} contracts read, {changed} new or changed")


def cmd_invoicing_run(args: argparse.Namespace) -> None:
    from services.invoicing import service

    settings = get_settings()
    operator = audit.operator_name(args.operator)

    async def go() -> service.BillingRun:
        async with _session("invoicing") as (conn, now):
            issued_on = date.fromisoformat(args.issued_on) if args.issued_on else now.date()
            asked = {"period": args.period, "issued_on": issued_on.isoformat()}
            # the run commits chunk by chunk: the trail says it was started, then its result
            # (a run that stops half way leaves the first row, and the next run completes it)
            async with conn.transaction():
                await audit.record(conn, now, operator, "billing-run-started", None, asked)
            # a second connection reads and invoices the next chunk while one is written
            reader = await db.connect(settings.database_url, "invoicing")
            try:
                with terminal.Progress(f"invoices issued for {args.period}") as progress:
                    run = await service.billing_run(
                        conn, settings, args.period, issued_on, now, keep=LIST_AT_MOST,
                        reader=reader, progress=progress.update,
                    )  # fmt: skip
            finally:
                await reader.close()
            async with conn.transaction():
                done = {**asked, "issued": run.issued}
                await audit.record(conn, now, operator, "billing-run", None, done)
            return run

    run = asyncio.run(go())
    if run.issued <= LIST_AT_MOST:
        for inv in run.invoices:
            print(
                f"{inv.invoice_number}  contract {inv.contract}  VS {inv.vs}  SS {inv.ss}  "
                f"{inv.amount_minor / 100:.2f} {inv.currency}  due {inv.due_on}"
            )
    else:
        print(f"(more than {LIST_AT_MOST}: list them with `billing invoices`)")
    print(f"{run.issued} invoices issued for {args.period}")


LIST_AT_MOST = 200


def cmd_invoices(args: argparse.Namespace) -> None:
    from services.invoicing.service import Q

    async def go() -> list[Any]:
        conn = await db.connect(get_settings().database_url, "invoicing")
        try:
            return list(await conn.fetch(Q.list_invoices, args.contract))
        finally:
            await conn.close()

    rows = asyncio.run(go())
    if args.json:
        terminal.print_json([dict(r) for r in rows])
        return
    for r in rows:
        print(
            f"{r['invoice_number']}  {r['contract']}  VS {r['vs']}  SS {r['ss']}  "
            f"{r['amount_minor'] / 100:.2f} {r['currency']}  due {r['due_on']}  "
            f"{r['status']} ({r['paid_minor'] / 100:.2f} paid)"
        )


def parse_amount(text: str) -> int:
    """``499.00`` -> 49900: ASCII digits, at most two decimals, within what a bank can send
    (``schemas.money.MAX_AMOUNT_MINOR``)."""
    from schemas.money import AmountError, parse_minor

    if not re.fullmatch(r"-?[0-9]+([.,][0-9]{1,2})?", text, re.ASCII):
        raise BadInput(f"amount must look like 499.00, got {text!r}")
    try:
        return parse_minor(text.replace(",", "."), 2)
    except AmountError as e:
        raise BadInput(f"amount: expected {e.expected}, got {text!r}") from None


async def publish_payment(settings: Settings, data: dict[str, Any], when: datetime) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from schemas.events import PaymentReceived
    from schemas.registry import brief, event_of
    from services.runtime.kafka_client import client_options, start_producer

    try:  # as JSON, as a consumer will read it: the contract is strict (ISO date strings)
        payment = PaymentReceived.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise CliError(f"payment refused: {brief(exc)}") from None
    event = event_of("/importers/manual", payment.vs, payment, when)
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await start_producer(producer, settings, "payment publish")
    topic = get_topics().payments_received
    try:
        key = (payment.vs or payment.bank_tx_id).encode()
        await producer.send_and_wait(
            topic,
            event.model_dump_json().encode(),
            key=key,
            headers=[("content-type", b"application/cloudevents+json")],
        )
    except KafkaError as exc:
        raise Unavailable(
            f"payment {payment.bank_tx_id} not published to {topic}: {exc!r}"
        ) from exc
    finally:
        await producer.stop()


def cmd_payment_publish(args: argparse.Namespace) -> None:
    settings = get_settings()

    async def go() -> None:
        conn = await db.connect(settings.database_url)
        try:
            now = await read_clock(conn) if settings.test_clock else datetime.now(UTC)
        finally:
            await conn.close()
        data = {
            "account": args.account or settings.bank_accounts.get(args.currency, ""),
            "bank_tx_id": args.bank_tx_id or uuid.uuid4().hex[:16],
            "booked_on": now.date().isoformat(),
            "value_on": now.date().isoformat(),
            "amount_minor": parse_amount(args.amount),
            "currency": args.currency,
            "vs": args.vs,
            "ss": args.ss,
            "ks": None,
            "counterparty_account": None,
            "counterparty_name": None,
            "message": args.message,
        }
        await publish_payment(settings, data, now)
        print(json.dumps(data))

    asyncio.run(go())


_DURATION = re.compile(r"^\s*(\d+)\s*(d|day|days|h|hour|hours|m|min|minutes)?\s*$")


def parse_duration(words: list[str]) -> timedelta:
    match = _DURATION.match(" ".join(words))
    if not match:
        raise BadInput(f"expected a duration like '10 days' or '6h', got {' '.join(words)!r}")
    n, unit = int(match.group(1)), (match.group(2) or "d")[0]
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]


async def advance(
    settings: Settings, by: timedelta, step: timedelta = timedelta(days=1), on_step: Any = None
) -> datetime:
    """Move the shared clock ahead in steps (a day by default), waiting after each until the
    system is quiet, as if that time had really passed with the workers running."""
    from services.runtime.quiesce import Quiescence

    conn = await db.connect(settings.database_url)
    try:
        async with Quiescence(settings, get_topics()) as q:
            await q.wait(conn)
            remaining = by
            now = await read_clock(conn)
            while remaining > timedelta(0):
                delta = min(step, remaining)
                now = await advance_clock(conn, delta)
                remaining -= delta
                await q.wait(conn)
                if on_step is not None:
                    await on_step(now)
            return now
    finally:
        await conn.close()


def cmd_clock(args: argparse.Namespace) -> None:
    settings = get_settings()
    if not settings.test_clock:
        raise BadConfig("the test clock is off: set BILLING_TEST_CLOCK=true (never in production)")

    async def go() -> None:
        conn = await db.connect(settings.database_url)
        try:
            if args.action == "set":
                target = datetime.fromisoformat(" ".join(args.value))
                if target.tzinfo is None:
                    target = target.replace(tzinfo=UTC)
                await set_clock(conn, target)
            now = await read_clock(conn)
        finally:
            await conn.close()
        if args.action == "advance":
            now = await advance(settings, parse_duration(args.value))
        if args.json:
            terminal.print_json({"now": now.isoformat(timespec="seconds")})
        else:
            print(now.isoformat(timespec="seconds"))

    asyncio.run(go())


def _shown(text: str) -> str:
    """Text as printed on one line: as it is, or quoted with escapes when it holds a
    control character (an address stored before the contact rules)."""
    return text if text.isprintable() else repr(text)


def cmd_notify_log(args: argparse.Namespace) -> None:
    settings = get_settings()

    async def go() -> list[Any]:
        from services.notify.service import Q

        conn = await db.connect(settings.database_url, "notify")
        try:
            rows = list(await conn.fetch(Q.log_for_contract, args.contract))
            if not rows and not await conn.fetchval(Q.contract_known, args.contract):
                raise audit.UnknownContract(args.contract, "notify")
            return rows
        finally:
            await conn.close()

    rows = asyncio.run(go())
    if args.json:
        terminal.print_json([dict(r) for r in rows])
        return
    if not rows:
        print(f"no notifications for contract {args.contract}")
        return
    print(f"{'created':<16}  {'kind':<8} {'chan':<5} {'recipient':<28} {'status':<7} tries  why")
    for r in rows:
        why = f"{r['failure_reason']}: " if r["failure_reason"] else ""
        print(
            f"{r['created_at']:%Y-%m-%d %H:%M}  {r['kind']:<8} {r['channel']:<5} "
            f"{_shown(r['recipient']):<28} {r['status']:<7} {r['attempts']:>5}"
            f"{'  ' + why + _shown(r['last_error']) if r['last_error'] else ''}"
        )


def cmd_audit_log(args: argparse.Namespace) -> None:
    from services.bank_import.importer import SCHEMA as BANK_IMPORT

    async def go() -> list[audit.Entry]:
        conn = await db.connect(get_settings().database_url)
        try:
            return await audit.trail(conn, (*SERVICES, BANK_IMPORT), args.contract, args.limit)
        finally:
            await conn.close()

    entries = asyncio.run(go())
    if args.json:
        print(json.dumps([e.as_json() for e in entries], ensure_ascii=False, indent=2))
        return
    if not entries:
        print(
            "no operator actions recorded"
            + (f" for contract {args.contract}" if args.contract else "")
        )
        return
    head = ("at (UTC)", "operator", "action", "contract", "service")
    print("{:<19}  {:<12} {:<16} {:<10} {:<12} reason; details".format(*head))
    for e in entries:
        details = json.dumps(e.details, ensure_ascii=False, sort_keys=True)
        print(
            f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  {_shown(e.operator):<12} {e.action:<16} "
            f"{e.contract or '-':<10} {e.service:<12} {_shown(e.reason or '-')}; {details}"
        )


def cmd_notify_preview(args: argparse.Namespace) -> None:
    from services.notify import templates

    settings = get_settings()
    currency = args.currency or {"sk": "EUR", "hu": "HUF"}.get(args.lang, "CZK")
    amount = {"EUR": 1990, "HUF": 1234500}.get(currency, 49900)
    context = {
        "contract": "1001",
        "customer_name": "Jan Novák",
        "request_id": "preview",
        "overdue_minor": amount,
        "currency": currency,
        "account": settings.bank_accounts.get(currency, ""),
        "invoices": [
            {
                "invoice_number": "2026000001",
                "vs": "1001",
                "ss": "2026000001",
                "due_on": "2026-12-15",
                "open_minor": amount,
                "currency": currency,
            }
        ],
    }
    msg = templates.render(args.kind, args.lang, context, settings.company_name)
    parts = {
        "text": f"Subject: {msg.subject}\n\n{msg.text}",
        "html": msg.html,
        "sms": msg.sms,
    }
    if args.json:
        whole = {"kind": args.kind, "language": msg.language, "subject": msg.subject,
                 "text": msg.text, "html": msg.html, "sms": msg.sms}  # fmt: skip
        terminal.print_json(whole if args.part == "all" else {args.part: whole[args.part]})
        return
    if args.part != "all":
        print(parts[args.part])
        return
    for name, body in parts.items():
        print(f"----- {name} ({msg.language}) -----")
        print(body)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = get_settings()

    async def go() -> None:
        await db.ensure_database(settings.database_url)
        for service in SERVICES:
            for name in await db.migrate(settings.database_url, service):
                print(f"applied {name}")

    asyncio.run(go())


def cmd_topics(args: argparse.Namespace) -> None:
    from services.runtime.stack import create_topics

    created = asyncio.run(create_topics(get_settings(), get_topics()))
    print(f"{len(created)} topics created")


def cmd_run(args: argparse.Namespace) -> None:
    import os

    from services.runtime.stack import Stack, StackConfig

    settings = get_settings()
    cfg = StackConfig(
        run_dir=ROOT / ".run",
        database_url=os.environ.get("BILLING_DATABASE_URL"),
        bootstrap=os.environ.get("BILLING_KAFKA_BOOTSTRAP_SERVERS"),
        test_clock=settings.test_clock,
        smtp_port=settings.smtp_port,
        notice_port=settings.notice_port,
        mail_folder=ROOT / ".run" / "mail",
        log_level=settings.log_level,
    )
    stack = Stack(cfg)
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start_infrastructure()
        workers = stack.start_workers()
        print("billing is running (Ctrl-C stops everything):")
        broker = stack.broker.name if stack.broker else "Kafka"
        print(f"  broker                   {stack.bootstrap}  ({broker})")
        print(f"  database                 {stack.database_url}")
        print(f"  SMTP sink                127.0.0.1:{cfg.smtp_port}  (mail in {cfg.mail_folder})")
        print(f"  notice page              http://127.0.0.1:{cfg.notice_port}/")
        for service in SERVICES:
            print(
                f"  {service:<24} http://127.0.0.1:{stack.metrics_port(service)}/metrics"
                f"   log {cfg.run_dir / 'logs' / (service + '.log')}"
            )
        print(
            f"  access snapshot          http://127.0.0.1:{stack.metrics_port('provisioning')}/access"
        )
        token_file = cfg.run_dir / "operator-token"
        print(
            f"  operator token           {token_file}  (operator 'dev': curl -H"
            f' "Authorization: Bearer $(cat {token_file})" ...)'
        )
        print(
            "  in another shell:        export BILLING_DATABASE_URL='"
            + stack.database_url
            + f"' BILLING_KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap}",
            flush=True,
        )
        import time

        while not stopping:
            for name, proc in workers.procs.items():
                if proc.poll() is not None:
                    print(f"worker {name} exited with {proc.returncode}; restarting", flush=True)
                    stack.restart_worker(name)
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped", flush=True)


def cmd_demo(args: argparse.Namespace) -> None:
    from services.demo import main as demo_main

    sys.exit(demo_main())


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="billing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--debug", action="store_true", help="a failure shows its traceback")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole system on the embedded stack").set_defaults(
        fn=cmd_run
    )
    sub.add_parser("demo", help="the end-to-end scenario on the test clock").set_defaults(
        fn=cmd_demo
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser("topics", help="create the Kafka topics").set_defaults(fn=cmd_topics)

    contracts = sub.add_parser("contracts").add_subparsers(dest="sub", required=True)
    load = contracts.add_parser("load", help="load contracts from a JSON or CSV file")
    load.add_argument("file")
    load.add_argument("--operator", help=audit.OPERATOR_HELP)
    load.set_defaults(fn=cmd_contracts_load)

    invoicing = sub.add_parser("invoicing").add_subparsers(dest="sub", required=True)
    run = invoicing.add_parser("run", help="billing run: issue a month's invoices")
    run.add_argument("--period", required=True, help="YYYY-MM")
    run.add_argument("--issued-on", help="issue date (default: today on the clock)")
    run.add_argument("--operator", help=audit.OPERATOR_HELP)
    run.set_defaults(fn=cmd_invoicing_run)

    inv = sub.add_parser("invoices", help="list invoices")
    inv.add_argument("--contract")
    inv.add_argument("--json", action="store_true", help="a JSON array")
    inv.set_defaults(fn=cmd_invoices)

    payment = sub.add_parser("payment").add_subparsers(dest="sub", required=True)
    pub = payment.add_parser("publish", help="publish one incoming payment (manual entry)")
    pub.add_argument("--vs")
    pub.add_argument("--ss")
    pub.add_argument("--amount", required=True, help="e.g. 499.00")
    pub.add_argument("--currency", default="CZK")
    pub.add_argument("--account")
    pub.add_argument("--bank-tx-id")
    pub.add_argument("--message")
    pub.set_defaults(fn=cmd_payment_publish)

    clock = sub.add_parser("clock", help="the shared test clock")
    clock.add_argument("action", choices=["show", "set", "advance"])
    clock.add_argument("value", nargs="*")
    clock.add_argument("--json", action="store_true", help='{"now": ...}')
    clock.set_defaults(fn=cmd_clock)

    from services.dunning import cli as dunning_cli

    dunning_cli.register(sub)

    from services.bank_import import cli as bank_import_cli
    from services.gear import cli as gear_cli
    from services.payments import cli as payments_cli

    bank_import_cli.register(sub)
    payments_cli.register(sub)
    gear_cli.register(sub)

    from services.notify import templates

    notify = sub.add_parser("notify").add_subparsers(dest="sub", required=True)
    preview = notify.add_parser("preview", help="render one message type in one language")
    preview.add_argument("kind", choices=templates.KINDS)
    preview.add_argument("--lang", default="cs", help="cs, sk, hu or en (others fall back)")
    preview.add_argument("--part", choices=["all", "text", "html", "sms"], default="all")
    preview.add_argument("--currency", help="default: CZK for cs/en, EUR for sk, HUF for hu")
    preview.add_argument("--json", action="store_true", help="subject, text, html, sms")
    preview.set_defaults(fn=cmd_notify_preview)
    nlog = notify.add_parser("log", help="messages for a contract")
    nlog.add_argument("contract")
    nlog.add_argument("--json", action="store_true", help="a JSON array")
    nlog.set_defaults(fn=cmd_notify_log)

    audit_cmd = sub.add_parser("audit", help="the operators' audit trail").add_subparsers(
        dest="sub", required=True
    )
    alog = audit_cmd.add_parser("log", help="operator actions, oldest first")
    alog.add_argument("contract", nargs="?", help="only the actions on this contract")
    alog.add_argument("--limit", type=int, default=1000, help="the latest N (default 1000)")
    alog.add_argument("--json", action="store_true")
    alog.set_defaults(fn=cmd_audit_log)
    return p


def main(argv: list[str] | None = None) -> None:
    """Run one command; a failure exits with its code (services/runtime/errors.py) after
    one line on stderr, its traceback only with ``--debug``."""
    debug, argv = terminal.debug_flag(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except SystemExit:
        raise
    except BaseException as exc:  # Ctrl-C too: 130, without a traceback
        terminal.fail("billing", exc, debug)


if __name__ == "__main__":
    main()
