"""``billing contracts load``, ``billing invoicing run`` and ``billing invoices``."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.money import AmountError, parse_minor
from schemas.registry import brief
from services.invoicing.settings import InvoicingSettings, supplier
from services.runtime import audit, db, terminal
from services.runtime.errors import UsageError
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

    settings = get_settings(InvoicingSettings)
    supplier(settings)  # refused before anything is read or written
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


def _amount(text: str, what: str) -> int:
    try:
        return parse_minor(text, signed=False)
    except AmountError as e:
        raise UsageError(f"{what} {text!r}: expected {e.expected}") from None


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:.2f} {currency}"


def cmd_invoice_show(args: argparse.Namespace) -> None:
    from services.invoicing import issued

    async def go() -> dict[str, Any]:
        conn = await db.connect(get_settings().database_url, "invoicing")
        try:
            if issued.is_credit_note(args.number):
                doc = await issued.document(conn, args.number)
                return _shown(doc, [])
            row = await issued.invoice_row(conn, args.number)
            notes = [n["number"] for n in await conn.fetch(issued.Q.credit_notes_of, args.number)]
            if row["lines"] is None:
                return {
                    "kind": "invoice", "number": row["invoice_number"], "contract": row["contract"],
                    "issued_on": row["issued_on"], "due_on": row["due_on"],
                    "total_minor": row["amount_minor"], "currency": row["currency"],
                    "no_document": row["no_document"], "credit_notes": notes,
                }  # fmt: skip
            return _shown(issued.invoice_document(row), notes)
        finally:
            await conn.close()

    shown = asyncio.run(go())
    if args.json:
        terminal.print_json(shown)
        return
    currency = shown["currency"]
    title = "credit note" if shown["kind"] == "credit_note" else "invoice"
    print(f"{title} {shown['number']}  contract {shown['contract']}  issued {shown['issued_on']}")
    if shown.get("original"):
        print(f"  credits invoice {shown['original']}: {shown['reason']}")
    if shown.get("no_document"):
        print(f"  no document: {shown['no_document']}")
    for line in shown.get("lines", []):
        rate = "no VAT" if line["vat_rate"] is None else f"{line['vat_rate']} %"
        share = f" ({line['share']})" if line["share"] else ""
        period = f"  {line['period_start']}..{line['period_end']}" if line["period_start"] else ""
        print(
            f"  {line['number']:>2}. {line['description']}{period}{share}  "
            f"{line['quantity']} {line['unit']} x {_money(line['unit_price_minor'], currency)}  "
            f"base {_money(line['base_minor'], currency)}  VAT {rate} "
            f"{_money(line['vat_minor'], currency)}"
        )
    for row in shown.get("vat", []):
        rate = "no VAT" if row["vat_rate"] is None else f"{row['vat_rate']} %"
        print(
            f"  VAT {rate}: base {_money(row['base_minor'], currency)}, "
            f"VAT {_money(row['vat_minor'], currency)}"
        )
    print(f"  total {_money(shown['total_minor'], currency)}", end="")
    print(f"  due {shown['due_on']}" if shown["kind"] == "invoice" else "")
    if shown.get("credit_notes"):
        print(f"  credit notes: {', '.join(shown['credit_notes'])}")


def _shown(doc: Any, notes: list[str]) -> dict[str, Any]:
    from services.invoicing import stored

    return {
        "kind": doc.kind, "number": doc.number, "contract": doc.contract,
        "issued_on": doc.issued_on, "tax_point_on": doc.tax_point_on, "due_on": doc.due_on,
        "vs": doc.vs, "ss": doc.ss, "currency": doc.currency, "treatment": doc.treatment,
        "customer": doc.customer.name,
        "lines": [stored.line_model(x).model_dump(mode="json") for x in doc.lines],
        "vat": [stored.recap_model(r).model_dump(mode="json") for r in doc.recap],
        "base_minor": doc.base_minor, "vat_minor": doc.vat_minor, "total_minor": doc.total_minor,
        "notes": list(doc.notes),
        "original": doc.original.number if doc.original else None, "reason": doc.reason,
        "credit_notes": notes,
    }  # fmt: skip


def cmd_invoice_write(args: argparse.Namespace) -> None:
    from services.invoicing import issued

    kind = args.format
    out = Path(args.out or f"{args.number}.{kind}")

    async def go() -> bytes:
        conn = await db.connect(get_settings().database_url, "invoicing")
        try:
            return issued.render(await issued.document(conn, args.number), kind)
        finally:
            await conn.close()

    data = asyncio.run(go())
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)  # whole or not at all
    print(f"{out} ({len(data)} bytes)")


def _parts(given: list[str]) -> list[tuple[int, int | None]]:
    """``--line N`` (the rest of line N) and ``--line N=AMOUNT`` (of its base)."""
    parts: list[tuple[int, int | None]] = []
    for text in given:
        line, _, amount = text.partition("=")
        if not line.strip().isdigit():
            raise UsageError(f"--line {text!r}: expected N or N=AMOUNT, e.g. 2=100.00")
        parts.append((int(line), _amount(amount, f"--line {line}") if amount else None))
    return parts


def cmd_credit_note_issue(args: argparse.Namespace) -> None:
    if bool(args.all) == bool(args.line):
        raise UsageError("name the lines to credit (--line N or --line N=AMOUNT) or --all")
    asked = _parts(args.line) if args.line else None
    _credit(args, asked, "credit-note")


def cmd_invoice_cancel(args: argparse.Namespace) -> None:
    """Cancelling is a full credit note of what is left, never a deletion."""
    _credit(args, None, "invoice-cancel")


def _credit(
    args: argparse.Namespace, asked: list[tuple[int, int | None]] | None, action: str
) -> None:
    """A credit note on invoice ``args.number`` (``invoice-cancel``: all that is left, and
    ``invoice.cancelled``), audited with its reason in the note's transaction."""
    from services.invoicing import issued
    from services.runtime.unit import Unit

    settings = get_settings(InvoicingSettings)
    supplier(settings)
    operator = audit.operator_name(args.operator)

    async def go() -> issued.Credited:
        async with db.command_session(settings, "invoicing") as (conn, now):
            issued_on = date.fromisoformat(args.issued_on) if args.issued_on else now.date()
            async with conn.transaction():
                unit = Unit(conn, now, service_source())
                if action == "invoice-cancel":
                    done = await issued.cancel_invoice(
                        unit, settings, args.number, issued_on, args.reason, operator
                    )
                else:
                    done = await issued.issue_credit_note(
                        unit, settings, args.number, issued_on, args.reason, asked, operator
                    )
                details = {
                    "invoice": args.number, "credit_note": done.note.number,
                    "amount_minor": done.note.total_minor,
                    "lines": getattr(args, "line", None) or "all",
                }  # fmt: skip
                await audit.record(
                    conn, now, operator, action, done.event.contract, details, args.reason
                )
                await unit.flush()
            return done

    done = asyncio.run(go())
    e = done.event
    if action == "invoice-cancel":
        print(
            f"invoice {e.invoice_number} cancelled by credit note {e.credit_note_number} "
            f"({_money(e.amount_minor, e.currency)}); it now asks {_money(e.due_minor, e.currency)}"
        )
        return
    print(
        f"{e.credit_note_number} credits {_money(e.amount_minor, e.currency)} of invoice "
        f"{e.invoice_number}; it now asks {_money(e.due_minor, e.currency)}"
    )


def service_source() -> str:
    from services.invoicing.service import SOURCE

    return SOURCE


def cmd_add_item(args: argparse.Namespace) -> None:
    from services.invoicing import billed, issued
    from services.runtime.unit import Unit

    settings = get_settings(InvoicingSettings)
    supplier(settings)
    operator = audit.operator_name(args.operator)
    item = billed.OneOff(
        description=args.description,
        quantity=args.quantity,
        unit=args.unit,
        unit_price_minor=_amount(args.price, "--price"),
        vat_category=args.vat,
        invoice="own" if args.own_invoice else "next",
    )

    async def go() -> str | None:
        async with db.command_session(settings, "invoicing") as (conn, now):
            issued_on = date.fromisoformat(args.issued_on) if args.issued_on else now.date()
            async with conn.transaction():
                unit = Unit(conn, now, service_source())
                number = await issued.add_one_off(
                    unit, settings, args.contract, item, issued_on, operator, args.key
                )
                details = {**item.model_dump(mode="json"), "invoice_number": number}
                await audit.record(conn, now, operator, "add-item", args.contract, details)
                await unit.flush()
            return number

    number = asyncio.run(go())
    if number is None:
        print(f"added to contract {args.contract}: on its next invoice")
    else:
        print(f"invoice {number} issued for contract {args.contract}")


def cmd_documents_undelivered(args: argparse.Namespace) -> None:
    from services.invoicing import issued

    async def go() -> list[dict[str, Any]]:
        conn = await db.connect(get_settings().database_url, "invoicing")
        try:
            return await issued.undelivered(conn)
        finally:
            await conn.close()

    rows = asyncio.run(go())
    if args.json:
        terminal.print_json(rows)
        return
    for r in rows:
        kind = "credit note" if r["kind"] == "credit_note" else "invoice"
        sent = r["archived_at"]
        state = f"sent to notify {sent:%Y-%m-%d %H:%M}" if sent else "not made yet"
        print(
            f"{r['number']}  {kind}  contract {r['contract']}  issued {r['issued_on']}  "
            f"{_money(r['amount_minor'], r['currency'])}  {state}"
        )
    print(f"{len(rows)} documents not yet delivered (why: billing notify log CONTRACT)")


# --- VoIP credit top-ups ----------------------------------------------------------------


def cmd_topup_request(args: argparse.Namespace) -> None:
    """An operator's top-up through the path the worker takes for the zone's (not capped:
    only self-service top-ups are); refused: the reason on stderr, exit 65."""
    from schemas.events import TopupRequested
    from services.invoicing import topups
    from services.runtime.errors import BadInput
    from services.runtime.unit import Unit

    settings = get_settings(InvoicingSettings)
    supplier(settings)
    operator = audit.operator_name(args.operator)
    if (args.amount is None) == (args.coupon is None):
        raise UsageError("give an AMOUNT or --coupon CODE")
    amount = None if args.amount is None else _amount(args.amount, "AMOUNT")
    request_id = args.request_id or f"cli-{uuid.uuid4()}"

    async def go() -> topups.Outcome:
        async with db.command_session(settings, "invoicing") as (conn, now):
            billed_in = await _contract_currency(conn, args.contract)  # unknown: exit 66
            currency = None if amount is None else (args.currency or billed_in)
            try:
                asked = TopupRequested(
                    contract=args.contract, request_id=request_id, coupon=args.coupon,
                    amount_minor=amount, currency=currency, requested_by="operator",
                    who=operator, requested_at=now,
                )  # fmt: skip
            except ValidationError as e:
                raise UsageError(f"top-up request: {brief(e)}") from None
            async with conn.transaction():
                unit = Unit(conn, now, service_source())
                done = await topups.request(unit, settings, asked)
                details = {
                    "request_id": request_id, "coupon": args.coupon, "amount_minor": amount,
                    "currency": currency, "invoice_number": done.invoice_number,
                    "refused": done.reason_code, "again": not done.new,
                }  # fmt: skip
                await audit.record(conn, now, operator, "topup-request", args.contract, details)
                await unit.flush()
            return done

    done = asyncio.run(go())
    again = "" if done.new else " (this request id was answered before)"
    if done.invoice_number is None:
        raise BadInput(f"top-up refused ({done.reason_code}): {done.reason}{again}")
    assert done.amount_minor is not None and done.currency is not None
    print(
        f"invoice {done.invoice_number} for {_money(done.amount_minor, done.currency)} of VoIP "
        f"credit, contract {done.contract}, VS {done.contract} SS {done.invoice_number}, "
        f"due {done.due_on}{again}"
    )


async def _contract_currency(conn: Any, contract: str) -> str:
    from services.invoicing.service import Q
    from services.runtime.audit import UnknownContract

    row = await conn.fetchrow(Q.billable_contract, contract)
    if row is None:
        raise UnknownContract(contract, "invoicing")
    return str(row["currency"]).strip()


def cmd_topup_cap(args: argparse.Namespace) -> None:
    from services.invoicing import topups

    settings = get_settings(InvoicingSettings)
    operator = audit.operator_name(args.operator)
    cap = _amount(args.amount, "AMOUNT")

    async def go() -> tuple[int | None, str]:
        async with db.command_session(settings, "invoicing") as (conn, now):
            async with conn.transaction():
                was, currency = await topups.set_cap(conn, args.contract, cap, now, operator)
                details = {"cap_minor": cap, "was_minor": was, "currency": currency}
                await audit.record(
                    conn, now, operator, "topup-cap", args.contract, details, args.reason
                )
            return was, currency

    was, currency = asyncio.run(go())
    before = (
        _money(was, currency)
        if was is not None
        else f"the default {_money(settings.topup_cap_minor.get(currency, 0), currency)}"
    )
    print(
        f"contract {args.contract}: self-service top-ups up to {_money(cap, currency)} a month "
        f"(was {before})"
    )


def cmd_topup_list(args: argparse.Namespace) -> None:
    from services.invoicing import domain, topups

    settings = get_settings(InvoicingSettings)
    if args.month is not None:
        try:
            domain.validate_period(args.month)
        except ValueError as e:
            raise UsageError(f"--month: {e}") from None

    async def go() -> topups.Month:
        async with db.command_session(settings, "invoicing") as (conn, now):
            month = args.month or domain.month_of(topups.operator_day(settings, now))
            return await topups.month(conn, settings, args.contract, month)

    shown = asyncio.run(go())
    if args.json:
        terminal.print_json(shown.as_json())
        return
    cur = shown.currency
    kind = "its own" if shown.own_cap else "the default"
    print(
        f"contract {shown.contract}, {shown.month}: self-service top-ups issued "
        f"{_money(shown.issued_minor, cur)} of {_money(shown.cap_minor, cur)} ({kind} cap), "
        f"{_money(shown.left_minor, cur)} left"
    )
    for r in shown.requests:
        amount = "" if r["amount_minor"] is None else _money(r["amount_minor"], cur)
        what = r["coupon"] or amount
        if r["invoice_number"]:
            paid = f"paid {r['paid_on']}" if r["paid_on"] else f"{r['invoice_status']}"
            outcome = f"invoice {r['invoice_number']} {amount}, due {r['due_on']}, {paid}"
        else:
            outcome = f"refused ({r['reason_code']}): {r['reason']}"
        print(
            f"  {r['decided_at']:%Y-%m-%d %H:%M}  {r['requested_by']} {r['who']}  {what}  {outcome}"
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

    add = contracts.add_parser("add-item", help="add a one-off item to a contract")
    add.add_argument("contract")
    add.add_argument("--description", required=True)
    add.add_argument(
        "--price",
        required=True,
        help="unit price, e.g. 1500.00 (as the contract"
        "'s prices: VAT included unless its prices_include_vat is false)",
    )
    add.add_argument("--quantity", default="1")
    add.add_argument("--unit", default="piece", choices=["piece", "hour", "service", "lump"])
    add.add_argument("--vat", default="standard", help="VAT category (default: standard)")
    add.add_argument(
        "--own-invoice",
        action="store_true",
        help="issue it at once on an invoice of its own (else: the next invoice)",
    )
    add.add_argument("--key", help="names the item in its contract (default: a new one)")
    add.add_argument("--issued-on", help="the own invoice's issue date (default: today)")
    add.add_argument("--operator", help=audit.OPERATOR_HELP)
    add.set_defaults(fn=cmd_add_item)

    invoice = sub.add_parser("invoice").add_subparsers(dest="sub", required=True)
    show = invoice.add_parser("show", help="an invoice or credit note with its lines")
    show.add_argument("number")
    show.add_argument("--json", action="store_true", help="a JSON object")
    show.set_defaults(fn=cmd_invoice_show)
    write = invoice.add_parser("write", help="write an invoice's or credit note's PDF or ISDOC")
    write.add_argument("number")
    write.add_argument("--format", choices=["pdf", "isdoc"], default="pdf")
    write.add_argument("--out", help="the file (default: NUMBER.pdf or NUMBER.isdoc)")
    write.set_defaults(fn=cmd_invoice_write)

    cancel = invoice.add_parser(
        "cancel", help="cancel an invoice: a full credit note of what is left, never a deletion"
    )
    cancel.add_argument("number", help="the invoice")
    cancel.add_argument("--reason", required=True, help="why (the credit note states it)")
    cancel.add_argument("--issued-on", help="the credit note's issue date (default: today)")
    cancel.add_argument("--operator", help=audit.OPERATOR_HELP)
    cancel.set_defaults(fn=cmd_invoice_cancel)

    credit = sub.add_parser("credit-note").add_subparsers(dest="sub", required=True)
    issue = credit.add_parser("issue", help="credit part or all of an invoice")
    issue.add_argument("number", help="the invoice")
    issue.add_argument("--reason", required=True, help="why (the document states it)")
    issue.add_argument(
        "--line",
        action="append",
        default=[],
        metavar="N[=AMOUNT]",
        help="credit line N (what is left of it) or AMOUNT of its base "
        "(without VAT); repeat for more lines",
    )
    issue.add_argument("--all", action="store_true", help="credit all that is left")
    issue.add_argument("--issued-on", help="issue date (default: today on the clock)")
    issue.add_argument("--operator", help=audit.OPERATOR_HELP)
    issue.set_defaults(fn=cmd_credit_note_issue)

    documents = sub.add_parser("documents").add_subparsers(dest="sub", required=True)
    pending = documents.add_parser("undelivered", help="documents not yet delivered")
    pending.add_argument("--json", action="store_true", help="a JSON array")
    pending.set_defaults(fn=cmd_documents_undelivered)

    topup = sub.add_parser("topup").add_subparsers(dest="sub", required=True)
    ask = topup.add_parser("request", help="issue a VoIP credit top-up invoice (not capped)")
    ask.add_argument("contract")
    ask.add_argument("amount", nargs="?", help="e.g. 500.00, in the contract's currency")
    ask.add_argument("--coupon", help="a coupon's code (BILLING_TOPUP_COUPONS) instead")
    ask.add_argument("--currency", help="the amount's currency (default: the contract's)")
    ask.add_argument("--request-id", help="the request's id: the same id again issues nothing more")
    ask.add_argument("--operator", help=audit.OPERATOR_HELP)
    ask.set_defaults(fn=cmd_topup_request)
    cap = topup.add_parser("cap", help="set a contract's monthly cap of self-service top-ups")
    cap.add_argument("contract")
    cap.add_argument("amount", help="e.g. 2000.00, in the contract's currency (0: none)")
    cap.add_argument("--reason", help="why (in the audit trail)")
    cap.add_argument("--operator", help=audit.OPERATOR_HELP)
    cap.set_defaults(fn=cmd_topup_cap)
    listed = topup.add_parser("list", help="a contract's top-ups of a month, its cap, what is left")
    listed.add_argument("contract")
    listed.add_argument("--month", help="YYYY-MM (default: this month, the operator's time)")
    listed.add_argument("--json", action="store_true", help="a JSON object")
    listed.set_defaults(fn=cmd_topup_list)

    inv = sub.add_parser("invoices", help="list invoices")
    inv.add_argument("--contract")
    inv.add_argument("--json", action="store_true", help="a JSON array")
    inv.set_defaults(fn=cmd_invoices)
