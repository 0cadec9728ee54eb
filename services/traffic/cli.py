"""``billing traffic show CONTRACT``: a contract's traffic per address and period, as a
table or JSON (docs/usage.md#traffic)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.runtime import audit, db, terminal
from services.runtime.errors import UsageError
from services.runtime.settings import get_settings

GRAINS = ("5min", "hour", "day")


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive


def parse_when(text: str, what: str, end: bool) -> datetime:
    """``2026-12-05`` (a UTC day: from its start, or to its end for ``--to``) or an ISO
    time (UTC unless it says otherwise)."""
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{what}: expected a date (2026-12-05) or a time (2026-12-05T10:00), got {text!r}"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def period_of(start: str | None, end: str | None, now: datetime) -> Period:
    """The period asked; by default today (UTC) up to now."""
    to = parse_when(end, "--to", end=True) if end else now
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frm = parse_when(start, "--from", end=False) if start else min(today, to)
    if frm >= to:
        raise UsageError(f"--from {frm.isoformat()} is not before --to {to.isoformat()}")
    return Period(frm, to)


def summary(contract: str, period: Period, by: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of ``billing traffic show``: the rows and the totals per address."""
    per_address: dict[str, list[int]] = {}
    for r in rows:
        sums = per_address.setdefault(r["address"], [0, 0])
        sums[0] += r["rx_bytes"]
        sums[1] += r["tx_bytes"]
    rx = sum(s[0] for s in per_address.values())
    tx = sum(s[1] for s in per_address.values())
    return {
        "contract": contract,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "by": by,
        "rows": [
            {
                "start": r["start"].astimezone(UTC).isoformat(),
                "address": r["address"],
                "rx_bytes": r["rx_bytes"],
                "tx_bytes": r["tx_bytes"],
                "total_bytes": r["rx_bytes"] + r["tx_bytes"],
            }
            for r in rows
        ],
        "addresses": [
            {"address": a, "rx_bytes": s[0], "tx_bytes": s[1], "total_bytes": s[0] + s[1]}
            for a, s in sorted(per_address.items())
        ],
        "rx_bytes": rx,
        "tx_bytes": tx,
        "total_bytes": rx + tx,
    }


def _size(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def print_table(s: dict[str, Any]) -> None:
    print(f"contract {s['contract']}: traffic from {s['from']} to {s['to']}, by {s['by']}")
    if not s["rows"]:
        print("no traffic in this period")
        return
    print(f"{'start (UTC)':<17} {'address':<40} {'rx (down)':>10} {'tx (up)':>10} {'total':>10}")
    for r in s["rows"]:
        print(
            f"{r['start'][:16].replace('T', ' '):<17} {terminal.shown(r['address']):<40} "
            f"{_size(r['rx_bytes']):>10} {_size(r['tx_bytes']):>10} {_size(r['total_bytes']):>10}"
        )
    print("per address:")
    for a in s["addresses"]:
        print(
            f"{'':<17} {terminal.shown(a['address']):<40} {_size(a['rx_bytes']):>10} "
            f"{_size(a['tx_bytes']):>10} {_size(a['total_bytes']):>10}"
        )
    print(
        f"{'total':<17} {'':<40} {_size(s['rx_bytes']):>10} {_size(s['tx_bytes']):>10} "
        f"{_size(s['total_bytes']):>10}"
    )


def cmd_traffic_show(args: argparse.Namespace) -> None:
    from services.traffic.service import Q

    if not re.fullmatch(r"[1-9][0-9]{0,9}", args.contract):
        raise UsageError(f"contract: expected a contract number, got {args.contract!r}")
    address = args.address
    if address is not None:
        try:
            address = str(ipaddress.ip_network(address, strict=False))
            address = address.removesuffix("/32").removesuffix("/128")
        except ValueError:
            raise UsageError(f"--address: not an address or prefix: {args.address!r}") from None
    settings = get_settings()
    query = {"5min": Q.show_5min, "hour": Q.show_hour, "day": Q.show_day}[args.by]

    async def go() -> dict[str, Any]:
        async with db.command_session(settings, "traffic") as (conn, now):
            period = period_of(args.start, args.end, now)
            rows = [
                dict(r)
                for r in await conn.fetch(query, args.contract, period.start, period.end, address)
            ]
            if not rows and not await conn.fetchval(Q.contract_known, args.contract):
                raise audit.UnknownContract(args.contract, "traffic")
            return summary(args.contract, period, args.by, rows)

    result = asyncio.run(go())
    if args.json:
        terminal.print_json(result)
    else:
        print_table(result)


def register(sub: Any) -> None:
    traffic = sub.add_parser("traffic", help="traffic per contract and address").add_subparsers(
        dest="sub", required=True
    )
    show = traffic.add_parser("show", help="a contract's traffic per address and period")
    show.add_argument("contract")
    show.add_argument("--from", dest="start", help="a UTC day or an ISO time (default: today)")
    show.add_argument(
        "--to", dest="end", help="a UTC day (to its end) or an ISO time (default now)"
    )
    show.add_argument("--by", choices=GRAINS, default="hour", help="bucket size (default hour)")
    show.add_argument("--address", help="only this address or prefix")
    show.add_argument("--json", action="store_true", help="rows, totals per address and total")
    show.set_defaults(fn=cmd_traffic_show)
