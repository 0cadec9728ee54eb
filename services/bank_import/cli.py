"""``billing import-statement``, ``billing fio fetch`` and ``billing payment publish``: every
way a payment enters the system goes through ``importer.import_movements`` (recorded once,
then published from the importer's outbox)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from schemas.events import PaymentReceived
from services.bank_import import importer
from services.bank_import.formats import FORMATS, ImportOptions, Statement, read_statement
from services.bank_import.settings import BankImportSettings
from services.runtime import audit, db, terminal
from services.runtime.errors import BadInput
from services.runtime.settings import get_settings

# What a manual entry's movement is recorded as in ``bank_import.imported``.
MANUAL = "manual entry"


def _options(args: argparse.Namespace) -> ImportOptions:
    return ImportOptions(
        account=args.account,
        currency=args.currency,
        country=args.country,
        gpc_variant=args.gpc_variant,
        csv_mapping=getattr(args, "mapping", None),
    )


def _emit(movements: list[PaymentReceived], dry_run: bool, report: Any = None) -> None:
    if dry_run:
        for m in movements:
            print(json.dumps(m.model_dump(mode="json"), ensure_ascii=False))
        print(f"{len(movements)} movements parsed (dry run: nothing published)", file=sys.stderr)
    else:
        print(
            f"{report.parsed} movements parsed, {report.new} new, {report.already} already "
            f"imported; {report.published} events published",
        )


def _notes(statement: Statement) -> Statement:
    """Print what is imported all the same but worth a look (a payer account whose check
    digits fail: the payment is kept, its account as the bank printed it)."""
    for note in statement.notes:
        print(f"note: {note} (imported as printed)", file=sys.stderr)
    return statement


def cmd_import_statement(args: argparse.Namespace) -> None:
    path = Path(args.file)
    data = path.read_bytes()
    statement = _notes(read_statement(data, str(path), args.format, _options(args), args.encoding))
    movements = statement.movements
    if args.dry_run:
        _emit(movements, True)
        return
    fmt = args.format or "auto"
    operator = audit.operator_name(args.operator)
    with terminal.Progress(f"{path.name}: events published", len(movements)) as progress:
        report = asyncio.run(
            importer.import_movements(
                get_settings(),
                movements,
                path.name,
                fmt,
                operator,
                progress=progress.update,
                accounts=statement.accounts,
            )
        )
    _emit(movements, False, report)


def cmd_fio_fetch(args: argparse.Namespace) -> None:
    from services.bank_import import fio_api

    settings = get_settings(BankImportSettings)
    # Never a command-line option: a process's arguments are every local user's to read.
    token = settings.secret("fio_token")
    if not token:
        raise ValueError(
            "a Fio API token: BILLING_FIO_TOKEN_FILE (a file holding it) or BILLING_FIO_TOKEN"
        )

    async def once() -> None:
        await db.migrate(settings.database_url, importer.SCHEMA)
        pool = await db.create_pool(settings.database_url, importer.SCHEMA, max_size=2)
        try:
            async with pool.acquire() as conn:
                today = (await importer.now_for(settings, conn)).date()
            start, end = fio_api.window(args.days, today)
            if args.date_from:
                start = date.fromisoformat(args.date_from)
            if args.date_to:
                end = date.fromisoformat(args.date_to)
            client = fio_api.FioClient(
                token, pool, settings.fio_base_url, settings.fio_min_interval
            )
            data = await client.period(start, end)
        finally:
            await pool.close()
        name = f"fio-{start.isoformat()}-{end.isoformat()}.json"
        statement = _notes(read_statement(data, name, "fio-json", _options(args)))
        movements = statement.movements
        if args.dry_run:
            _emit(movements, True)
            return
        with terminal.Progress(f"{name}: events published", len(movements)) as progress:
            report = await importer.import_movements(
                settings, movements, name, "fio-json", progress=progress.update,
                accounts=statement.accounts,
            )  # fmt: skip
        _emit(movements, False, report)

    async def go() -> None:
        while True:
            await once()
            if not args.watch:
                return
            await asyncio.sleep(args.watch)

    asyncio.run(go())


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


def payment(data: dict[str, Any]) -> PaymentReceived:
    """A movement as the contract has it, checked as a consumer will read it: from JSON,
    strictly (ISO date strings); refused with the fields named (exit 65)."""
    from pydantic import ValidationError

    from schemas.registry import brief

    try:
        return PaymentReceived.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise BadInput(f"payment refused: {brief(exc)}") from None


def cmd_payment_publish(args: argparse.Namespace) -> None:
    settings = get_settings()

    async def go() -> None:
        conn = await db.connect(settings.database_url)
        try:
            now = await importer.now_for(settings, conn)
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
        await importer.import_movements(settings, [payment(data)], MANUAL, MANUAL)
        print(json.dumps(data))

    asyncio.run(go())


def register_payment(sub: Any) -> None:
    payment_cmd = sub.add_parser("payment").add_subparsers(dest="sub", required=True)
    pub = payment_cmd.add_parser("publish", help="publish one incoming payment (manual entry)")
    pub.add_argument("--vs")
    pub.add_argument("--ss")
    pub.add_argument("--amount", required=True, help="e.g. 499.00")
    pub.add_argument("--currency", default="CZK")
    pub.add_argument("--account")
    pub.add_argument("--bank-tx-id")
    pub.add_argument("--message")
    pub.set_defaults(fn=cmd_payment_publish)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--account", help="our account (IBAN or prefix-number/bank); overrides the file")
    p.add_argument("--currency", help="currency where the file names none (GPC; default CZK)")
    p.add_argument("--country", choices=["CZ", "SK", "HU"], help="symbol conventions")
    p.add_argument(
        "--gpc-variant",
        choices=["kb", "cs"],
        default="kb",
        help="GPC posting codes 4/5: kb (4 debit reversal, 5 credit reversal) or cs (swapped)",
    )
    p.add_argument("--dry-run", action="store_true", help="print movements as JSON lines only")


def register(sub: Any) -> None:
    imp = sub.add_parser(
        "import-statement", help="import a bank statement file (GPC, camt.053, MT940, Fio, CSV)"
    )
    imp.add_argument("file")
    imp.add_argument("--format", choices=FORMATS, help="default: detected from the content")
    imp.add_argument("--mapping", help="column-mapping file (TOML) for --format csv")
    imp.add_argument("--encoding", help="MT940 text encoding (default: UTF-8, else cp1250)")
    imp.add_argument("--operator", help=audit.OPERATOR_HELP)
    _common(imp)
    imp.set_defaults(fn=cmd_import_statement)

    fio = sub.add_parser("fio", help="Fio banka API").add_subparsers(dest="sub", required=True)
    fetch = fio.add_parser(
        "fetch",
        help="fetch and import movements (the token: BILLING_FIO_TOKEN_FILE or _FIO_TOKEN)",
    )
    fetch.add_argument("--days", type=int, default=7, help="window ending today (default 7)")
    fetch.add_argument("--from", dest="date_from", help="YYYY-MM-DD")
    fetch.add_argument("--to", dest="date_to", help="YYYY-MM-DD")
    fetch.add_argument("--watch", type=float, help="repeat every N seconds (at least 30)")
    _common(fetch)
    fetch.set_defaults(fn=cmd_fio_fetch)
