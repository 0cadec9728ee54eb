"""``billing payments unmatched | show | assign``: the operators' queue from the shell."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.payments import queue
from services.payments.service import Payments
from services.payments.settings import PaymentsSettings
from services.runtime import audit, db, terminal
from services.runtime.clock import make_clock
from services.runtime.settings import get_settings
from services.runtime.unit import Unit


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}".replace(",", " ")


async def _with_conn(fn: Any) -> Any:
    settings = get_settings()
    conn = await db.connect(settings.database_url, "payments")
    try:
        return await fn(conn)
    finally:
        await conn.close()


def cmd_unmatched(args: argparse.Namespace) -> None:
    rows = asyncio.run(_with_conn(lambda c: queue.unmatched(c, args.limit)))
    if args.json:
        terminal.print_json(rows)
        return
    for r in rows:
        print(
            f"{r['account']}  {r['bank_tx_id']}  {r['booked_on']}  "
            f"{_money(r['amount_minor'], r['currency']):>14}  VS {r['vs'] or '-'}  "
            f"SS {r['ss'] or '-'}  {r['reason_code']}: {r['reason']}"
        )
        extra = " / ".join(
            x for x in (r["counterparty_account"], r["counterparty_name"], r["message"]) if x
        )
        if extra:
            print(f"    {extra}")
    print(f"{len(rows)} unmatched payment(s)")


def cmd_show(args: argparse.Namespace) -> None:
    found = asyncio.run(_with_conn(lambda c: queue.explain(c, args.account, args.bank_tx_id)))
    terminal.print_json(found)  # JSON with or without --json: there is no shorter form


def cmd_assign(args: argparse.Namespace) -> None:
    settings = get_settings(PaymentsSettings)
    payments = Payments(settings)

    async def go() -> dict[str, Any]:
        pool = await db.create_pool(settings.database_url, "payments", max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                clock = make_clock(settings)
                await clock.refresh(conn)
                unit = Unit(conn, clock.now(), "/services/payments")
                result = await queue.assign(
                    payments,
                    unit,
                    args.account,
                    args.bank_tx_id,
                    args.contract,
                    args.invoice,
                    audit.operator_name(args.operator),
                    args.note,
                    args.remember_payer,
                )
                await unit.flush()
                return result
        finally:
            await pool.close()

    result = asyncio.run(go())
    for a in result["allocations"]:
        state = "settled" if a["settled"] else "partly paid"
        print(f"invoice {a['invoice_number']}: {a['amount_minor'] / 100:.2f} ({state})")
    if result["credit_minor"]:
        print(f"credit kept for contract {result['contract']}: {result['credit_minor'] / 100:.2f}")
    print(f"assigned to contract {result['contract']}")


def register(sub: Any) -> None:
    payments = sub.add_parser("payments", help="the unmatched payments queue").add_subparsers(
        dest="sub", required=True
    )
    um = payments.add_parser("unmatched", help="list payments nobody could pair")
    um.add_argument("--limit", type=int, default=500)
    um.add_argument("--json", action="store_true")
    um.set_defaults(fn=cmd_unmatched)
    show = payments.add_parser("show", help="one movement, its decision and rule")
    show.add_argument("account")
    show.add_argument("bank_tx_id")
    show.add_argument("--json", action="store_true", help="the default: there is no other form")
    show.set_defaults(fn=cmd_show)
    asg = payments.add_parser("assign", help="pair an unmatched payment by hand")
    asg.add_argument("account")
    asg.add_argument("bank_tx_id")
    asg.add_argument("--contract", required=True)
    asg.add_argument("--invoice", help="pay this invoice first")
    asg.add_argument("--operator", help=audit.OPERATOR_HELP)
    asg.add_argument("--note")
    asg.add_argument(
        "--remember-payer",
        action="store_true",
        help="confirm the payer's account for this contract (pairing rule 3)",
    )
    asg.set_defaults(fn=cmd_assign)
