"""``billing contracts load``, ``billing invoicing run`` and ``billing invoices``."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from services.runtime import audit, db, terminal
from services.runtime.settings import get_settings

LIST_AT_MOST = 200  # invoices a billing run prints; more: `billing invoices`


def cmd_contracts_load(args: argparse.Namespace) -> None:
    from services.invoicing import contracts_file, service

    operator = audit.operator_name(args.operator)
    path = Path(args.file).resolve()

    async def go() -> tuple[int, int]:
        session = db.command_session(get_settings(), "invoicing")
        async with session as (conn, now), conn.transaction():
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
        async with db.command_session(settings, "invoicing") as (conn, now):
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


def register(sub: Any) -> None:
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
