"""``billing notify log`` and ``billing notify preview``."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.notify import templates
from services.runtime import audit, db, terminal
from services.runtime.settings import get_settings
from services.runtime.terminal import shown


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
            f"{shown(r['recipient']):<28} {r['status']:<7} {r['attempts']:>5}"
            f"{'  ' + why + shown(r['last_error']) if r['last_error'] else ''}"
        )


def cmd_notify_preview(args: argparse.Namespace) -> None:
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


def register(sub: Any) -> None:
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
