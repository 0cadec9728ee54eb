"""VoIP against the real PostgreSQL (issue 31 items 2 and 3): a CDR file imported twice
changes nothing the second time, a call in two files is one call, bad lines are refused by
line while the good ones import, a paid top-up delivered twice is credit once, prepaid
calls draining the credit announce low and exhausted once each, and notify tells the
customer once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from schemas import events as ev
from schemas.envelope import envelope
from services.notify.service import Notify
from services.notify.settings import NotifySettings
from services.runtime import db
from services.runtime.clock import SystemClock
from services.runtime.consumer import BatchConsumer, Record
from services.runtime.errors import BadInput
from services.runtime.runs import Run
from services.runtime.settings import get_settings
from services.runtime.unit import Unit
from services.voip import importer
from services.voip.cli import register  # noqa: F401  (the CLI module imports cleanly)
from services.voip.service import SOURCE, Voip
from services.voip.settings import VoipSettings

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
PRICES = (
    "prefix,destination,currency,price_per_minute,increments,setup_fee,valid_from,valid_to\n"
    "420,CZ fixed,CZK,1.00,60/60,0,2026-01-01,\n"
    "4206,CZ mobile,CZK,30.00,60/60,0,2026-01-01,\n"
)


def line(uid: str, account: str, dst: str, billsec: int, start: str = "2026-12-05 10:00:00",
         disposition: str = "ANSWERED") -> str:  # fmt: skip
    return (
        f'"{account}","601000001","{dst}","from-internal","","SIP/x-1","SIP/t-2","Dial","",'
        f'"{start}","{start}","{start}",{billsec + 5},{billsec},"{disposition}",'
        f'"DOCUMENTATION","{uid}",""\n'
    )


def settings_for(url: str, tmp: Path) -> VoipSettings:
    prices = tmp / "prices.csv"
    prices.write_text(PRICES)
    return VoipSettings(
        database_url=url, voip_price_list=prices, voip_credit_low_minor={"CZK": 5000}
    )


async def in_unit(
    conn: asyncpg.Connection, fn: Callable[[Unit], Awaitable[Any]], at: datetime = NOW
) -> None:
    async with conn.transaction():
        unit = Unit(conn, at, SOURCE)
        await fn(unit)
        await unit.flush()


def contract(number: str, prepaid: bool | None) -> ev.ContractUpserted:
    services = (
        None
        if prepaid is None
        else [ev.ContractService(kind="voip", description="VoIP", unit_price_minor=0,
                                 prepaid=prepaid)]
    )  # fmt: skip
    return ev.ContractUpserted(
        contract=number, customer_name="Jana Nováková", currency="CZK", monthly_fee_minor=0,
        contacts=[ev.Contact(name="Jana", email="jana@example.cz", phone="+420602000001",
                             categories=["billing"], owner=True)],
        services=services,
    )  # fmt: skip


async def outbox(conn: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = await conn.fetch("SELECT headers, value FROM outbox ORDER BY id")
    out = []
    for r in rows:
        value = json.loads(r["value"]) if r["value"] else {}
        out.append((value.get("type", ""), value.get("data", {})))
    return out


async def setup(url: str) -> asyncpg.Connection:
    await db.migrate(url, importer.SCHEMA)
    conn = await db.connect(url, importer.SCHEMA)
    return conn


def test_a_cdr_file_twice_and_a_call_in_two_files(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    good = line("1.1", "1001", "+420212345678", 61) + line("1.2", "1001", "601123456", 1)
    data = (
        good
        + line("1.3", "1001", "212345678", 0, disposition="NO ANSWER")
        + line("1.4", "9999", "212345678", 30)  # a contract voip does not know
        + line("1.5", "1001", "+999", 30)  # no price
        + line("1.6", "1001", "212345678", 30, start="2026-12-05 10:61:00")  # no time
    ).encode()

    async def go() -> None:
        conn = await setup(database_url)
        try:
            v = Voip(settings)
            await in_unit(conn, lambda u: v.on_contract(u, Run.of(_env(c), c)))
            first = await importer.import_file(settings, data, "Master.csv", operator="olga")
            assert (first.lines, first.rated, first.already, dict(first.skipped)) == (
                6,
                2,
                0,
                {"NO ANSWER": 1},
            )
            assert [(r.line, r.column) for r in first.refused] == [
                (6, "start (column 10)"), (4, "contract"), (5, "number")
            ]  # fmt: skip
            assert first.events == 1
            action = await conn.fetchrow("SELECT operator, action, details FROM operator_actions")
            assert (action["operator"], action["action"]) == ("olga", "voip-import")
            assert (action["details"]["rated"], action["details"]["refused"]) == (2, 3)
            calls = await conn.fetch("SELECT call_id, price_minor FROM calls ORDER BY call_id")
            assert [(r["call_id"], r["price_minor"]) for r in calls] == [
                ("1.1", 200),
                ("1.2", 3000),
            ]
            events = await outbox(conn)
            assert [t for t, _ in events] == ["voip.calls_rated.v1"]
            assert [c["call_id"] for c in events[0][1]["calls"]] == ["1.1", "1.2"]

            # The same file again: nothing changes, nothing more is announced.
            again = await importer.import_file(settings, data, "Master.csv")
            assert again.repeated
            assert await conn.fetchval("SELECT count(*) FROM calls") == 2
            assert await conn.fetchval("SELECT count(*) FROM refused") == 3
            assert len(await outbox(conn)) == 1

            # Another file with one call of the first and one new: only the new is rated.
            other = good.splitlines(keepends=True)[0] + line("2.1", "1001", "212345678", 5)
            second = await importer.import_file(settings, other.encode(), "Master-2.csv")
            assert (second.rated, second.already) == (1, 1)
            events = await outbox(conn)
            assert [c["call_id"] for c in events[-1][1]["calls"]] == ["2.1"]
            assert sum(len(d["calls"]) for _, d in events) == 3  # each call announced once

            # The unknown contract becomes known: --retry rates the file's refused lines
            # again; the rest of the file is not counted or announced twice.
            late = contract("9999", prepaid=False)
            await in_unit(conn, lambda u: v.on_contract(u, Run.of(_env(late), late)))
            retried = await importer.import_file(settings, data, "Master.csv", retry=True)
            assert (retried.rated, retried.already, len(retried.refused)) == (1, 2, 2)
            assert [c["call_id"] for c in (await outbox(conn))[-1][1]["calls"]] == ["1.4"]
            assert await conn.fetchval("SELECT count(*) FROM refused") == 2

            # The refused lines are listed; a corrected line imported later drops out.
            fixed = line("1.6", "1001", "212345678", 30)
            await importer.import_file(settings, fixed.encode(), "Master-fix.csv")
            left = await conn.fetch(importer.Q.list_refused, False, 100)
            assert [(r["file"], r["line"]) for r in left] == [("Master.csv", 5)]
        finally:
            await conn.close()

    c = contract("1001", prepaid=False)
    asyncio.run(go())


def test_a_file_that_cannot_be_read_changes_nothing(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    with pytest.raises(BadInput, match=r"Master\.csv:2: expected utf-8 text"):
        asyncio.run(importer.import_file(settings, b'"1"\n"\xff"\n', "Master.csv"))


def _env(data: Any, subject: str | None = None) -> Any:
    from schemas.registry import ROUTES

    return envelope(ROUTES[type(data)][0], "/test", subject or data.contract, data, NOW)


def _record(offset: int, data: Any, topic: str = "billing.topups") -> tuple[Record, Any]:
    event = _env(data)
    value = event.model_dump_json().encode()
    return Record(topic, 0, offset, data.contract.encode(), value, None), event


def test_top_up_once_calls_drain_it_low_and_exhausted_once_and_notify_tells_once(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)

    async def go() -> None:
        conn = await setup(database_url)
        pool = await db.create_pool(database_url, importer.SCHEMA)
        try:
            v = Voip(settings)
            c = contract("1002", prepaid=True)
            await in_unit(conn, lambda u: v.on_contract(u, Run.of(_env(c), c)))
            # A later contract.upserted that does not list services keeps the flag.
            quiet = contract("1002", prepaid=None)
            await in_unit(conn, lambda u: v.on_contract(u, Run.of(_env(quiet), quiet)))
            consumer = BatchConsumer(
                "voip", pool, SystemClock(), {ev.VoipCreditPurchased: v.on_purchase}
            )
            paid = ev.VoipCreditPurchased(
                contract="1002", request_id="r1", invoice_number="2026000123",
                amount_minor=10000, currency="CZK", paid_on=date(2026, 12, 5),
            )  # fmt: skip
            rec, _ = _record(0, paid)
            await consumer.apply([rec])
            await consumer.apply([rec])  # delivered twice: the inbox
            # the same invoice in another event (a republish): the ledger's key
            await in_unit(conn, lambda u: v.on_purchase(u, Run.of(_env(paid), paid)))
            assert await conn.fetchval("SELECT balance_minor FROM credit_balances") == 10000

            # 100.00 CZK; mobile calls at 30.00/min: 2 min -> 40.00 (low), 2 min -> -20.00
            drain = line("3.1", "1002", "601123456", 120)
            await importer.import_file(settings, drain.encode(), "a.csv")
            more = line("3.2", "1002", "601123456", 120, start="2026-12-05 11:00:00")
            await importer.import_file(settings, (drain + more).encode(), "b.csv")
            # and a third file with one short call more: below zero again, nothing new said
            last = line("3.3", "1002", "212345678", 10, start="2026-12-05 11:30:00")
            await importer.import_file(settings, last.encode(), "c.csv")
            said = [(t, d.get("balance_minor")) for t, d in await outbox(conn)
                    if t.startswith("voip.credit")]  # fmt: skip
            assert said == [
                ("voip.credit_balance.v1", 10000),
                ("voip.credit_balance.v1", 4000),
                ("voip.credit_low.v1", 4000),
                ("voip.credit_balance.v1", -2000),
                ("voip.credit_exhausted.v1", -2000),
                ("voip.credit_balance.v1", -2100),
            ]
            ledger = await conn.fetch("SELECT entry FROM credit_ledger ORDER BY at, entry")
            assert sorted(r["entry"] for r in ledger) == [
                "call:3.1", "call:3.2", "call:3.3", "invoice:2026000123"
            ]  # fmt: skip
            low = next(d for t, d in await outbox(conn) if t == "voip.credit_low.v1")
            await notify_once(database_url, c, ev.VoipCreditLow.model_validate(low))
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(go())


async def notify_once(url: str, c: ev.ContractUpserted, low: ev.VoipCreditLow) -> None:
    await db.migrate(url, "notify")
    pool = await db.create_pool(url, "notify")
    try:
        n = Notify(NotifySettings(database_url=url))
        consumer = BatchConsumer(
            "notify",
            pool,
            SystemClock(),
            {ev.ContractUpserted: n.on_contract, ev.VoipCreditLow: n.on_voip_credit},
        )
        contract_rec, _ = _record(0, c, "billing.contracts")
        low_rec, _ = _record(0, low, "usage.voip")
        await consumer.apply([contract_rec, low_rec])
        await consumer.apply([low_rec])  # redelivered
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT kind, channel, recipient, subject, body FROM deliveries ORDER BY channel"
            )
        assert [(r["kind"], r["channel"], r["recipient"]) for r in rows] == [
            ("voip_credit_low", "email", "jana@example.cz"),
            ("voip_credit_low", "sms", "+420602000001"),
        ]
        assert "40,00" in rows[0]["body"] and "Dobijte" in rows[0]["body"]
    finally:
        await pool.close()


def test_billing_voip_calls_lists_a_contracts_period(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The operator's query of a contract's calls: the period's days in the PBX's time
    zone (a call at 00:30 Prague on 1 December is December's), totals, --json; an unknown
    contract is not found, a bad day a usage error."""
    from services.cli import main

    settings = settings_for(database_url, tmp_path)
    data = (
        line("3.1", "1001", "212345678", 61, start="2026-11-30 23:59:00")
        + line("3.2", "1001", "601123456", 30, start="2026-12-01 00:30:00")
        + line("3.3", "1001", "212345678", 120, start="2026-12-04 18:00:00")
    ).encode()

    async def go() -> None:
        conn = await setup(database_url)
        try:
            v = Voip(settings)
            await in_unit(conn, lambda u: v.on_contract(u, Run.of(_env(c), c)))
            report = await importer.import_file(settings, data, "Master.csv")
            assert report.rated == 3
        finally:
            await conn.close()

    c = contract("1001", prepaid=False)
    asyncio.run(go())
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_VOIP_PRICE_LIST", str(settings.voip_price_list))
    get_settings.cache_clear()  # settings read by an earlier test's command line
    try:
        main(["voip", "calls", "1001", "--from", "2026-12-01", "--to", "2026-12-31", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert [x["call_id"] for x in out["calls"]] == ["3.2", "3.3"]
        assert out["calls"][0]["started_at"] == "2026-12-01T00:30:00+01:00"
        totals = {"currency": "CZK", "calls": 2, "seconds": 150, "price_minor": 3200}
        assert out["totals"] == [totals]
        main(["voip", "calls", "1001", "--from", "2026-11-30", "--to", "2026-11-30"])
        said = capsys.readouterr().out
        assert "212345678" in said and "1 calls, 1 min 1 s, 2.00 CZK" in said
        with pytest.raises(SystemExit) as e:
            main(["voip", "calls", "4242", "--from", "2026-12-01"])
        assert e.value.code == 66
        with pytest.raises(SystemExit) as e:
            main(["voip", "calls", "1001", "--from", "1.12.2026"])
        assert e.value.code in (64, 65)
    finally:
        get_settings.cache_clear()
