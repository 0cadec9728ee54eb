"""``billing voip import|refused|price|balance|calls``: CDR files in, refused lines, a call's
price, a prepaid balance, a contract's rated calls in a period."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from schemas import pricelist
from services.runtime import audit, db, terminal
from services.runtime.errors import BadInput, NotFound
from services.runtime.settings import get_settings
from services.runtime.terminal import shown
from services.voip import cdr, importer
from services.voip.service import Q
from services.voip.settings import VoipSettings


def _settings() -> VoipSettings:
    return get_settings(VoipSettings)


def cmd_import(args: argparse.Namespace) -> None:
    settings = _settings()
    path = Path(args.file)
    report = asyncio.run(
        importer.import_file(
            settings, path.read_bytes(), path.name, args.format, args.mapping,
            audit.operator_name(args.operator), args.retry,
        )
    )  # fmt: skip
    if args.json:
        terminal.print_json(report.as_json())
        return
    if report.repeated:
        print(
            f"{path.name}: imported before ({report.import_id[:12]}): nothing changed"
            " (--retry rates its refused lines again)"
        )
        return
    for r in report.refused[:50]:
        print(f"refused: {shown(r.render(path.name))}", file=sys.stderr)
    if len(report.refused) > 50:
        print(f"... and {len(report.refused) - 50} more: billing voip refused", file=sys.stderr)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items())) or "none"
    print(
        f"{path.name}: {report.lines} lines, {report.rated} calls rated, {report.already} imported"
        f" before, skipped: {skipped}; {len(report.refused)} refused;"
        f" {report.events} events queued for the voip worker to publish"
    )


def _read(*queries: tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
    """The rows of each (query, arguments), from voip's schema (migrated first)."""
    url = _settings().database_url

    async def go() -> list[list[Any]]:
        await db.migrate(url, importer.SCHEMA)
        conn = await db.connect(url, importer.SCHEMA)
        try:
            return [list(await conn.fetch(q, *a)) for q, a in queries]
        finally:
            await conn.close()

    return asyncio.run(go())


def cmd_refused(args: argparse.Namespace) -> None:
    [rows] = _read((Q.list_refused, (args.all, args.limit)))
    if args.json:
        terminal.print_json(
            [{**dict(r), "imported_at": r["imported_at"].isoformat()} for r in rows]
        )
        return
    if not rows:
        print("no refused CDR lines")
    for r in rows:
        where = f"{shown(r['file'])}:{r['line']}: {r['column']}"
        print(f"{where}: {r['problem']}, got {shown(r['value'])!r}")


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what}: expected a date YYYY-MM-DD, got {text!r}") from None


def cmd_price(args: argparse.Namespace) -> None:
    settings = _settings()
    prices = importer.price_list(settings)
    tz = importer.pbx_zone(settings)
    day = _day(args.at, "--at") if args.at else datetime.now(tz).date()
    if args.seconds < 0:
        raise BadInput(f"--seconds: expected 0 or more, got {args.seconds}")
    try:
        quote = prices.quote(args.number, day, args.seconds, settings.voip_country_prefix)
    except pricelist.NumberError as e:
        raise BadInput(str(e)) from None
    except pricelist.NoPrice as e:
        raise NotFound(str(e)) from None
    rate = quote.rate
    out = {
        "number": quote.number,
        "prefix": rate.prefix,
        "destination": rate.destination,
        "currency": rate.currency,
        "price_per_minute": str(rate.per_minute),
        "increments": rate.increments,
        "setup_fee": str(rate.setup),
        "seconds": quote.seconds,
        "billed_seconds": rate.billed_seconds(quote.seconds),
        "price_minor": quote.price_minor,
        "on": day.isoformat(),
    }
    if args.json:
        terminal.print_json(out)
        return
    exp = pricelist.EXPONENT.get(rate.currency, 2)
    price = f"{quote.price_minor / 10**exp:.{exp}f}"
    print(
        f"+{quote.number}: {rate.destination} (prefix {rate.prefix}), {rate.per_minute}"
        f" {rate.currency}/min, increments {rate.increments}, setup {rate.setup};"
        f" {quote.seconds} s cost {price} {rate.currency} (on {day})"
    )


def cmd_balance(args: argparse.Namespace) -> None:
    balances, ledger = _read(
        (Q.balances_of, (args.contract,)), (Q.ledger_of, (args.contract, args.entries))
    )
    if not balances:
        raise NotFound(f"contract {args.contract}: no prepaid VoIP credit recorded")
    if args.json:
        terminal.print_json(
            {
                "contract": args.contract,
                "balances": [
                    {
                        "currency": b["currency"],
                        "balance_minor": b["balance_minor"],
                        "low": b["low_sent"],
                        "exhausted": b["exhausted_sent"],
                    }
                    for b in balances
                ],
                "ledger": [
                    {
                        "entry": e["entry"],
                        "currency": e["currency"],
                        "change_minor": e["change_minor"],
                        "at": e["at"].isoformat(),
                    }
                    for e in ledger
                ],
            }
        )
        return
    for b in balances:
        state = "exhausted" if b["exhausted_sent"] else "low" if b["low_sent"] else "ok"
        print(f"{args.contract}: {b['balance_minor'] / 100:.2f} {b['currency']} ({state})")
    for e in ledger:
        change = f"{e['change_minor'] / 100:+.2f} {e['currency']}"
        print(f"  {e['at']:%Y-%m-%d %H:%M}  {change}  {e['entry']}")


def cmd_calls(args: argparse.Namespace) -> None:
    """A contract's rated calls whose start falls on the days --from to --to (both
    inclusive, the PBX's time zone; by default this month to today)."""
    settings = _settings()
    tz = importer.pbx_zone(settings)
    today = datetime.now(tz).date()
    first = _day(args.start, "--from") if args.start else today.replace(day=1)
    last = _day(args.end, "--to") if args.end else today
    if last < first:
        raise BadInput(f"--to {last} is before --from {first}")
    if args.limit < 1:
        raise BadInput(f"--limit: expected 1 or more, got {args.limit}")
    start = datetime.combine(first, time(), tz)
    end = datetime.combine(last + timedelta(days=1), time(), tz)
    [known], calls, totals = _read(
        (Q.contract_known, (args.contract,)),
        (Q.calls_of, (args.contract, start, end, args.limit)),
        (Q.calls_total, (args.contract, start, end)),
    )
    if not known[0]:
        raise NotFound(f"contract {args.contract}: voip knows no such contract")
    if args.json:
        terminal.print_json(
            {
                "contract": args.contract,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "time_zone": str(tz),
                "calls": [
                    {**dict(c), "started_at": c["started_at"].astimezone(tz).isoformat()}
                    for c in calls
                ],
                "totals": [dict(t) for t in totals],
                "complete": sum(t["calls"] for t in totals) <= args.limit,
            }
        )
        return
    for c in calls:
        exp = pricelist.EXPONENT.get(c["currency"], 2)
        minutes, seconds = divmod(c["seconds"], 60)
        print(
            f"{c['started_at'].astimezone(tz):%Y-%m-%d %H:%M:%S}  {shown(c['number']):>16}"
            f"  {minutes:3d}:{seconds:02d}  {c['price_minor'] / 10**exp:>10.{exp}f}"
            f" {c['currency']}  {shown(c['destination'])}{'' if c['prepaid'] else ' (invoiced)'}"
        )
    if not totals:
        print(f"{args.contract}: no calls from {first} to {last}")
    for t in totals:
        exp = pricelist.EXPONENT.get(t["currency"], 2)
        print(
            f"{args.contract}, {first} to {last}: {t['calls']} calls, {t['seconds'] // 60} min"
            f" {t['seconds'] % 60} s, {t['price_minor'] / 10**exp:.{exp}f} {t['currency']}"
        )
    shown_n = len(calls)
    if sum(t["calls"] for t in totals) > shown_n:
        print(f"(the first {shown_n} calls listed: --limit shows more)")


def register(sub: Any) -> None:
    voip = sub.add_parser("voip", help="VoIP: CDR import, prices, prepaid credit").add_subparsers(
        dest="sub", required=True
    )
    imp = voip.add_parser("import", help="import a CDR file (rated once per call)")
    imp.add_argument("file")
    imp.add_argument("--format", choices=cdr.FORMATS, default="asterisk-csv")
    imp.add_argument("--mapping", help="column mapping (TOML) for --format csv")
    imp.add_argument(
        "--retry",
        action="store_true",
        help="a file imported before: rate its refused lines again (a contract or price added)",
    )
    imp.add_argument("--operator", help=audit.OPERATOR_HELP)
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(fn=cmd_import)
    ref = voip.add_parser("refused", help="CDR lines not rated, and why")
    ref.add_argument("--all", action="store_true", help="also those a later import settled")
    ref.add_argument("--limit", type=int, default=1000)
    ref.add_argument("--json", action="store_true")
    ref.set_defaults(fn=cmd_refused)
    price = voip.add_parser("price", help="what a call to a number costs")
    price.add_argument("number")
    price.add_argument("--seconds", type=int, default=60, help="the call's length (default 60)")
    price.add_argument("--at", help="the day (YYYY-MM-DD; default today)")
    price.add_argument("--json", action="store_true")
    price.set_defaults(fn=cmd_price)
    bal = voip.add_parser("balance", help="a contract's prepaid credit and its latest entries")
    bal.add_argument("contract")
    bal.add_argument("--entries", type=int, default=20)
    bal.add_argument("--json", action="store_true")
    bal.set_defaults(fn=cmd_balance)

    calls = voip.add_parser("calls", help="a contract's rated calls in a period")
    calls.add_argument("contract")
    calls.add_argument("--from", dest="start", help="first day (YYYY-MM-DD; default the 1st)")
    calls.add_argument("--to", dest="end", help="last day, inclusive (default today)")
    calls.add_argument("--limit", type=int, default=1000, help="calls listed at most")
    calls.add_argument("--json", action="store_true")
    calls.set_defaults(fn=cmd_calls)
