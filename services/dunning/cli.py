"""``billing dunning explain | preview | postpone | exempt``: what operators ask of dunning."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime, time
from typing import Any

from schemas import events as ev
from services.dunning import domain
from services.dunning.service import Dunning, Q
from services.dunning.settings import DunningSettings
from services.runtime import audit, db, terminal
from services.runtime.clock import make_clock
from services.runtime.errors import NotFound
from services.runtime.settings import get_settings
from services.runtime.unit import Unit


async def _in_unit(fn: Any, commit: bool) -> Any:
    """Run ``fn(unit, dunning)`` in one transaction of the dunning schema; roll it back
    unless ``commit`` (explain and preview change nothing)."""
    settings = get_settings(DunningSettings)
    conn = await db.connect(settings.database_url, "dunning")
    try:
        clock = make_clock(settings)
        await clock.refresh(conn)
        tx = conn.transaction()
        await tx.start()
        try:
            unit = Unit(conn, clock.now(), "/services/dunning")
            result = await fn(unit, Dunning(settings))
            if commit:
                await unit.flush()
                await tx.commit()
            else:
                await tx.rollback()
            return result
        except BaseException:
            await tx.rollback()
            raise
    finally:
        await conn.close()


def _when(t: datetime, tz: Any) -> str:
    return f"{t.astimezone(tz):%Y-%m-%d %a %H:%M}"


def _explained(
    contract: str,
    facts: Any,
    policy: Any,
    now: Any,
    at: datetime,
    actions: Any,
    promises: Any,
    status: ev.DunningStatus,
) -> dict[str, Any]:
    """``dunning explain --json``: the same facts as the text, times in UTC ISO 8601;
    ``status`` is the explanation the customer is sent (``dunning.status``), as its data."""
    return {
        "status": status.model_dump(mode="json"),
        "contract": contract,
        "stage": facts.stage,
        "exempt": facts.exempt,
        "policy": policy.name,
        "now": at,
        "why": now.why,
        "timeline": [
            {"at": a["decided_at"], "kind": a["kind"], "request_id": a["request_id"]}
            for a in actions
        ],
        "acknowledged_at": facts.acknowledged_at,
        "promises": [
            {k: p[k] for k in ("made_at", "by", "until", "accepted", "note", "reason")}
            for p in promises
        ],
        "due_now": [{"kind": a.kind, "step": a.step} for a in now.actions],
        "held": now.held,
        "upcoming": [{"at": u.at, "action": u.action, "step": u.step} for u in now.upcoming],
        "next_check_at": now.next_check_at,
    }


def cmd_explain(args: argparse.Namespace) -> None:
    async def go(unit: Unit, d: Dunning) -> None:
        found = await d.facts(unit, args.contract)
        if found is None:
            raise NotFound(f"dunning knows no contract {args.contract}")
        facts, policy = found
        tz = domain.TIMEZONES.get(facts.country, domain.TIMEZONES["CZ"])
        tolerance = d.settings.rounding_tolerance.get(
            facts.invoices[0].currency if facts.invoices else "", 0
        )
        now = domain.decide(facts, policy, unit.now, tolerance)
        status = d.explain(facts, policy, now, unit.now)
        if args.json:
            actions = await unit.conn.fetch(Q.actions_of, args.contract)
            promises = await unit.conn.fetch(Q.promises_of, args.contract)
            terminal.print_json(
                _explained(args.contract, facts, policy, now, unit.now, actions, promises, status)
            )
            return
        exempt = " (exempt)" if facts.exempt else ""
        print(f"contract {args.contract}: {facts.stage}{exempt}, policy {policy.name}")
        print(f"  now ({_when(unit.now, tz)}): {now.why}")
        print("  timeline:")
        for a in await unit.conn.fetch(Q.actions_of, args.contract):
            print(f"    {_when(a['decided_at'], tz)}  {a['kind']:<8} {a['request_id']}")
        if facts.acknowledged_at:
            print(f"    {_when(facts.acknowledged_at, tz)}  notice acknowledged by the customer")
        for e in await unit.conn.fetch(Q.exemptions_of, args.contract):
            print(f"    {_when(e['since'], tz)}  exempted by {e['by']}: {e['reason']}")
            if e["lifted_at"]:
                why = f": {e['lift_reason']}" if e["lift_reason"] else ""
                print(f"    {_when(e['lifted_at'], tz)}  exemption lifted by {e['lifted_by']}{why}")
        for p in await unit.conn.fetch(Q.promises_of, args.contract):
            verdict = "accepted" if p["accepted"] else "refused"
            print(
                f"    {_when(p['made_at'], tz)}  promise by {p['by']} until"
                f" {_when(p['until'], tz)} ({verdict}{'; ' + p['note'] if p['note'] else ''})"
                f"{' - ' + p['reason'] if p['reason'] else ''}"
            )
        for line in _to_pay(status):
            print(line)
        if now.actions:
            print("  due now: " + ", ".join(f"{a.kind} ({a.step})" for a in now.actions))
        if now.held:
            print(f"  held: {now.held}")
        print("  next:")
        if not now.upcoming and now.next_check_at is None:
            print("    nothing scheduled")
        for u in now.upcoming:
            print(f"    {_when(u.at, tz)}  {u.action} (step {u.step!r} of policy {policy.name})")
        if now.next_check_at:
            print(f"  next check: {_when(now.next_check_at, tz)}")

    asyncio.run(_in_unit(go, commit=False))


def _to_pay(status: ev.DunningStatus) -> list[str]:
    """What ends it, as the customer is told it (the zone's Access page)."""
    if not status.invoices:
        return []
    lines = [
        f"  overdue since {status.overdue_since}: {status.overdue_minor / 100:.2f}"
        f" {status.currency} to pay to {status.account or '(no account configured)'}"
    ]
    for i in status.invoices:
        lines.append(
            f"    invoice {i.invoice_number}: {i.open_minor / 100:.2f} {i.currency},"
            f" VS {i.vs}, SS {i.ss}, due {i.due_on}"
        )
    return lines


def cmd_preview(args: argparse.Namespace) -> None:
    day = date.fromisoformat(args.on)

    async def go(unit: Unit, d: Dunning) -> list[tuple[str, str, str, str]]:
        rows: list[tuple[str, str, str, str]] = []
        contracts = [r["contract"] for r in await unit.conn.fetch(Q.all_contracts)]
        known: dict[str, Any] = {}
        for i in range(0, len(contracts), 1000):
            known.update(await d.facts_many(unit, contracts[i : i + 1000]))
        for contract in contracts:
            if contract not in known:
                continue
            facts, policy = known[contract]
            tz = domain.TIMEZONES.get(facts.country, domain.TIMEZONES["CZ"])
            at = datetime.combine(day, time(12, 0), tzinfo=tz)
            tolerance = d.settings.rounding_tolerance.get(
                facts.invoices[0].currency if facts.invoices else "", 0
            )
            decision = domain.decide(facts, policy, at, tolerance)
            for a in decision.actions:
                if a.kind != "skip":
                    rows.append((contract, a.kind, a.step, policy.name))
            if decision.held:
                rows.append((contract, "held", decision.held, policy.name))
        return rows

    rows = asyncio.run(_in_unit(go, commit=False))
    if args.json:
        terminal.print_json(
            {
                "on": day,
                "actions": [
                    {"contract": c, "kind": k, "step": s, "policy": p} for c, k, s, p in rows
                ],
            }
        )
        return
    print(f"on {day} (decided at 12:00 local time, on the facts known now):")
    for contract, kind, step, policy in rows:
        print(f"  {contract:<12} {kind:<9} {step:<28} {policy}")
    print(f"{len([r for r in rows if r[1] != 'held'])} action(s)")


def cmd_postpone(args: argparse.Namespace) -> None:
    operator = audit.operator_name(args.operator)
    try:
        until = datetime.fromisoformat(args.until)
    except ValueError:
        raise ValueError(f"--until: expected YYYY-MM-DD[THH:MM], got {args.until!r}") from None

    async def go(unit: Unit, d: Dunning) -> None:
        nonlocal until
        if until.tzinfo is None:
            until = until.replace(tzinfo=unit.now.tzinfo)
        if await unit.conn.fetchrow(Q.get_contract, args.contract) is None:
            raise audit.UnknownContract(args.contract, "dunning")
        data = ev.PromiseMade(
            contract=args.contract, until=until, by="operator",
            reason=f"{operator}: {args.reason}", made_at=unit.now,
        )  # fmt: skip
        await d.promise(unit, data)
        await audit.record(
            unit.conn, unit.now, operator, "postpone", args.contract,
            {"until": until.isoformat()}, args.reason,
        )  # fmt: skip

    asyncio.run(_in_unit(go, commit=True))
    print(f"contract {args.contract}: suspension and restriction postponed until {args.until}")


def cmd_exempt(args: argparse.Namespace) -> None:
    if not args.lift and not args.reason:
        raise ValueError("--reason is required (or --lift to end the exemption)")
    operator = audit.operator_name(args.operator)

    async def go(unit: Unit, d: Dunning) -> None:
        if args.lift:
            await d.set_exempt(unit, args.contract, None, operator, lift_reason=args.reason)
        else:
            await d.set_exempt(unit, args.contract, args.reason, operator)

    asyncio.run(_in_unit(go, commit=True))
    print(f"contract {args.contract}: " + ("exemption lifted" if args.lift else "exempt"))


def register(sub: Any) -> None:
    dunning = sub.add_parser("dunning").add_subparsers(dest="sub", required=True)
    explain = dunning.add_parser("explain", help="a contract's timeline and what comes next")
    explain.add_argument("contract")
    explain.add_argument("--json", action="store_true", help="one JSON object")
    explain.set_defaults(fn=cmd_explain)
    preview = dunning.add_parser("preview", help="who would be acted on, on a date")
    preview.add_argument("--on", required=True, help="YYYY-MM-DD")
    preview.add_argument("--json", action="store_true", help="one JSON object")
    preview.set_defaults(fn=cmd_preview)
    postpone = dunning.add_parser("postpone", help="postpone suspension/restriction")
    postpone.add_argument("contract")
    postpone.add_argument("--until", required=True, help="YYYY-MM-DD[THH:MM]")
    postpone.add_argument("--reason", required=True)
    postpone.add_argument("--operator", help=audit.OPERATOR_HELP)
    postpone.set_defaults(fn=cmd_postpone)
    exempt = dunning.add_parser("exempt", help="exempt a contract from notice and suspension")
    exempt.add_argument("contract")
    exempt.add_argument("--reason", help="why (required to exempt; with --lift, optional)")
    exempt.add_argument("--lift", action="store_true")
    exempt.add_argument("--operator", help=audit.OPERATOR_HELP)
    exempt.set_defaults(fn=cmd_exempt)
