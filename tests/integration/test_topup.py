"""VoIP credit top-ups against the real PostgreSQL (issue 29 item 6): the monthly cap held
under two requests at once, the operator's month, a cap an operator raised, the same
request id twice, every refusal as an event, a paid top-up becoming credit once, the
top-up invoice's ISDOC, and the operators' commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from schemas.envelope import envelope
from schemas.events import (
    InvoiceIssued,
    InvoiceReopened,
    InvoiceSettled,
    TopupInvoiced,
    TopupRefused,
    TopupRequested,
    VoipCreditPurchased,
)
from services.invoicing import billed, contracts_file, documents, isdoc, issued, service, topups
from services.invoicing.settings import InvoicingSettings
from services.invoicing.worker import SPEC
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.unit import Unit
from services.runtime.worker import Runtime
from tests.integration.test_cli_scripts import billing, env, one_line
from tests.integration.test_invoice_documents import ADDRESS

__all__ = ["env"]  # the fixture

T = TypeVar("T")
NOW = datetime(2027, 3, 10, 9, tzinfo=UTC)
CONTRACTS: list[dict[str, Any]] = [
    {"contract": "8001", "customer_name": "Jana Nováková", "currency": "CZK",
     "monthly_fee_minor": 49900, "address": ADDRESS},
    {"contract": "8002", "customer_name": "Petr Malý", "currency": "CZK",
     "monthly_fee_minor": 49900, "address": ADDRESS, "active": False},
    # a business whose prices are without VAT: the coupon is still what the invoice asks
    {"contract": "8003", "customer_name": "Firma s.r.o.", "currency": "CZK",
     "address": ADDRESS, "company_id": "27082440", "tax_id": "CZ27082440",
     "prices_include_vat": False,
     "services": [{"description": "Internet 1 Gb/s", "unit_price_minor": 100000}]},
]  # fmt: skip


async def _setup(url: str, tmp: Path) -> InvoicingSettings:
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    try:
        path = tmp / "contracts.json"
        path.write_text(json.dumps(CONTRACTS), encoding="utf-8")
        records = contracts_file.read(path)
        await _unit(conn, NOW, lambda u: service.load_contracts(u, records))
    finally:
        await conn.close()
    return InvoicingSettings(database_url=url)


async def _unit(conn: asyncpg.Connection, now: datetime, fn: Callable[[Unit], Awaitable[T]]) -> T:
    async with conn.transaction():
        u = Unit(conn, now, service.SOURCE)
        result = await fn(u)
        await u.flush()
        return result


def _ask(
    contract: str,
    request_id: str,
    coupon: str | None = "CZK500",
    by: str = "customer",
    at: datetime = NOW,
    **amount: Any,
) -> TopupRequested:
    return TopupRequested(
        contract=contract, request_id=request_id, coupon=None if amount else coupon,
        requested_by=by, who="17" if by == "customer" else "olga", requested_at=at, **amount,
    )  # fmt: skip


async def _request(
    conn: asyncpg.Connection, settings: InvoicingSettings, asked: TopupRequested, at: datetime = NOW
) -> topups.Outcome:
    """A request as the worker applies it: its handler, in a transaction of its own."""
    handler = topups.on_requested(settings)
    event = envelope("topup.requested.v1", "/services/zone", asked.contract, asked, at)
    async with conn.transaction():
        unit = Unit(conn, at, service.SOURCE)
        await handler(unit, Run.of(event, asked))
        await unit.flush()
    row = await conn.fetchrow(topups.Q.get_topup_request, asked.contract, asked.request_id)
    return topups._outcome(row, new=True)


async def _events(conn: asyncpg.Connection, kind: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT value FROM outbox WHERE event_type = $1 ORDER BY id", kind)
    return [json.loads(bytes(r["value"]))["data"] for r in rows]


def test_the_worker_answers_top_up_requests_and_settlements() -> None:
    handlers = SPEC.subscriptions(Runtime("invoicing", InvoicingSettings(), None, None))  # type: ignore[arg-type]
    assert TopupRequested in handlers
    assert handlers[InvoiceSettled] is topups.on_settled


def test_two_requests_at_once_cannot_both_pass_the_cap(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_concurrent(database_url, tmp_path))


async def _concurrent(url: str, tmp: Path) -> None:
    settings = await _setup(url, tmp)
    conns = [await db.connect(url, "invoicing") for _ in range(2)]
    try:
        # 500.00 of the 1,000.00 cap issued already: each of two more 500.00 fits alone,
        # both together do not
        assert (await _request(conns[0], settings, _ask("8001", "r1"))).invoice_number
        decided = asyncio.Event()

        async def first() -> topups.Outcome:
            async with conns[0].transaction():
                unit = Unit(conns[0], NOW, service.SOURCE)
                done = await topups.request(unit, settings, _ask("8001", "r2"))
                decided.set()
                await asyncio.sleep(0.5)  # the second decides meanwhile, or waits for us
                await unit.flush()
                return done

        async def second() -> topups.Outcome:
            await decided.wait()
            async with conns[1].transaction():
                unit = Unit(conns[1], NOW, service.SOURCE)
                done = await topups.request(unit, settings, _ask("8001", "r3"))
                await unit.flush()
                return done

        one, two = await asyncio.gather(first(), second())
    finally:
        for c in conns:
            await c.close()
    assert one.invoice_number is not None and one.reason_code is None
    assert (two.invoice_number, two.reason_code) == (None, "over_cap")
    conn = await db.connect(url, "invoicing")
    try:
        invoices = await conn.fetch("SELECT amount_minor FROM invoices WHERE kind = 'topup'")
        assert [r["amount_minor"] for r in invoices] == [50000, 50000]  # 1,000.00: the cap
        refused = [TopupRefused.model_validate(d) for d in await _events(conn, "topup.refused.v1")]
        assert [(r.request_id, r.reason_code, r.left_minor) for r in refused] == [
            ("r3", "over_cap", 0)
        ]
        assert "0.00 CZK is left this month and 500.00 CZK was asked" in refused[0].reason
        granted = [
            TopupInvoiced.model_validate(d) for d in await _events(conn, "topup.invoiced.v1")
        ]
        assert [(g.request_id, g.left_minor) for g in granted] == [("r1", 50000), ("r2", 0)]
    finally:
        await conn.close()


def test_a_batch_of_top_ups_and_an_operators_at_once_do_not_deadlock(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_no_deadlock(database_url, tmp_path))


async def _no_deadlock(url: str, tmp: Path) -> None:
    """The worker's batch invoices 8001 (holding the year's series from then on) and then
    8003, while an operator's request for 8003 comes in between: were the contract's row
    taken before the series, each would hold what the other waits for."""
    settings = await _setup(url, tmp)
    conns = [await db.connect(url, "invoicing") for _ in range(2)]
    first_done = asyncio.Event()
    try:

        async def batch() -> list[topups.Outcome]:
            async with conns[0].transaction():
                unit = Unit(conns[0], NOW, service.SOURCE)
                done = [await topups.request(unit, settings, _ask("8001", "w1"))]
                first_done.set()
                await asyncio.sleep(0.3)  # the operator's request starts meanwhile
                done.append(await topups.request(unit, settings, _ask("8003", "w2")))
                await unit.flush()
                return done

        async def operator() -> topups.Outcome:
            await first_done.wait()
            asked = _ask("8003", "o1", by="operator", amount_minor=70000, currency="CZK")
            async with conns[1].transaction():
                unit = Unit(conns[1], NOW, service.SOURCE)
                done = await topups.request(unit, settings, asked)
                await unit.flush()
                return done

        done, op = await asyncio.gather(batch(), operator())
    finally:
        for c in conns:
            await c.close()
    assert [d.invoice_number for d in [*done, op]] == ["2027000001", "2027000002", "2027000003"]


def test_a_top_up_invoice_and_the_same_request_id_twice(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_invoice(database_url, tmp_path))


async def _invoice(url: str, tmp: Path) -> None:
    settings = await _setup(url, tmp)
    conn = await db.connect(url, "invoicing")
    try:
        first = await _request(conn, settings, _ask("8001", "zone-1", "CZK200"))
        again = await _request(conn, settings, _ask("8001", "zone-1", "CZK1000"))  # same id
        assert again.invoice_number == first.invoice_number
        assert await conn.fetchval("SELECT count(*) FROM invoices") == 1
        assert len(await _events(conn, "topup.invoiced.v1")) == 1
        issued_events = [
            InvoiceIssued.model_validate(d) for d in await _events(conn, "invoice.issued.v1")
        ]
        assert len(issued_events) == 1
        inv = issued_events[0]
        # VS the contract, SS the invoice number; the coupon's amount, VAT included
        assert (inv.contract, inv.vs, inv.ss) == ("8001", "8001", first.invoice_number)
        assert (inv.amount_minor, inv.issued_on, inv.due_on) == (
            20000,
            date(2027, 3, 10),
            date(2027, 3, 24),
        )
        assert inv.lines is not None and inv.vat is not None
        assert [(x.description, x.base_minor, x.vat_minor) for x in inv.lines] == [
            ("Dobití kreditu VoIP", 16529, 3471)  # 200.00 with 21 % VAT in it
        ]
        assert inv.tax_point_on == date(2027, 3, 10)  # the voucher's: its issue date
        # the document is made from the stored rows and its ISDOC validates
        doc = await issued.document(conn, first.invoice_number or "")
        xml = issued.render(doc, "isdoc")
        isdoc.validate(xml)
        assert b"Dobit\xc3\xad kreditu VoIP" in xml
        # a business with prices without VAT: the invoice still asks the coupon
        business = await _request(conn, settings, _ask("8003", "b-1", "CZK500"))
        assert (
            await conn.fetchval(
                "SELECT amount_minor FROM invoices WHERE invoice_number = $1",
                business.invoice_number,
            )
            == 50000
        )
    finally:
        await conn.close()


def test_every_refusal_is_published_with_its_code(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_refusals(database_url, tmp_path))


async def _refusals(url: str, tmp: Path) -> None:
    settings = await _setup(url, tmp)
    conn = await db.connect(url, "invoicing")
    try:
        asks = [
            _ask("9999", "a"),  # unknown contract
            _ask("9999", "a"),  # the same again: answered once
            _ask("8002", "b"),  # inactive
            _ask("8001", "c", "CZK300"),  # no such coupon
            _ask("8001", "d", "EUR10"),  # another currency
            _ask("8001", "e", amount_minor=30000, currency="CZK"),  # no coupon of 300.00
            _ask("8001", "f", "CZK1000"),
            _ask("8001", "g", "CZK200"),  # over the cap: 1,000.00 issued
        ]
        for a in asks:
            await _request(conn, settings, a)
        refused = [TopupRefused.model_validate(d) for d in await _events(conn, "topup.refused.v1")]
        assert [(r.contract, r.request_id, r.reason_code) for r in refused] == [
            ("9999", "a", "unknown_contract"),
            ("8002", "b", "inactive_contract"),
            ("8001", "c", "unknown_coupon"),
            ("8001", "d", "wrong_currency"),
            ("8001", "e", "amount_not_offered"),
            ("8001", "g", "over_cap"),
        ]
        assert all(r.reason for r in refused) and refused[-1].left_minor == 0
        assert await conn.fetchval("SELECT count(*) FROM invoices") == 1
        # an operator's request is not capped, and not counted in the cap
        op = await _request(
            conn, settings, _ask("8001", "h", by="operator", amount_minor=150000, currency="CZK")
        )
        assert op.invoice_number is not None
        month = await topups.month(conn, settings, "8001", "2027-03")
        assert (month.issued_minor, month.left_minor, month.own_cap) == (100000, 0, False)
        assert [r["request_id"] for r in month.requests] == ["c", "d", "e", "f", "g", "h"]
    finally:
        await conn.close()


def test_a_top_up_that_cannot_be_invoiced_is_refused_with_nothing_written(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a VAT category the supplier's country does not have on that day (CZ: no second
    # reduced rate since 2024): the document is refused, so is the request
    def reduced2(amount_minor: int, language: str) -> documents.Item:
        return documents.Item("Dobití", Decimal(1), "piece", amount_minor, "reduced2")

    monkeypatch.setattr(billed, "topup_item", reduced2)

    async def go() -> None:
        settings = await _setup(database_url, tmp_path)
        conn = await db.connect(database_url, "invoicing")
        try:
            done = await _request(conn, settings, _ask("8001", "x"))
            assert done.reason_code == "cannot_invoice" and done.invoice_number is None
            assert "contract 8001 cannot be invoiced: items[0].vat_category" in (done.reason or "")
            assert await conn.fetchval("SELECT count(*) FROM invoices") == 0
            assert await conn.fetchval("SELECT last FROM invoice_sequences") in (None, 0)
            assert len(await _events(conn, "topup.refused.v1")) == 1
            assert await _events(conn, "invoice.issued.v1") == []
        finally:
            await conn.close()

    asyncio.run(go())


def test_the_month_and_a_raised_cap(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_month(database_url, tmp_path))


async def _month(url: str, tmp: Path) -> None:
    settings = await _setup(url, tmp)
    conn = await db.connect(url, "invoicing")
    late_february = datetime(2027, 2, 28, 22, 30, tzinfo=UTC)  # 23:30 in Prague
    march = datetime(2027, 2, 28, 23, 30, tzinfo=UTC)  # 00:30 on 1 March in Prague
    try:
        feb = await _request(
            conn, settings, _ask("8001", "1", "CZK1000", at=late_february), late_february
        )
        assert feb.month == "2027-02" and feb.invoice_number is not None
        # an hour later it is March in Prague (still February in UTC): a new month's cap
        mar = await _request(conn, settings, _ask("8001", "2", "CZK1000", at=march), march)
        assert (mar.month, mar.reason_code) == ("2027-03", None)
        assert await conn.fetchval(
            "SELECT (issued_on, period) FROM invoices WHERE invoice_number = $1", mar.invoice_number
        ) == (date(2027, 3, 1), "2027-03")
        over = await _request(conn, settings, _ask("8001", "3", "CZK500"))
        assert over.reason_code == "over_cap"
        # an operator raises the cap to 2,000.00: another 500.00 fits, then 1,000.00 not
        async with conn.transaction():
            was, currency = await topups.set_cap(conn, "8001", 200000, NOW, "olga")
        assert (was, currency) == (None, "CZK")
        assert (await _request(conn, settings, _ask("8001", "4", "CZK500"))).invoice_number
        refused = await _request(conn, settings, _ask("8001", "5", "CZK1000"))
        assert refused.reason_code == "over_cap"
        assert "cap of 2000.00 CZK" in (refused.reason or "") and "500.00 CZK is left" in (
            refused.reason or ""
        )
    finally:
        await conn.close()


def test_a_paid_top_up_becomes_credit_once(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_paid(database_url, tmp_path))


async def _paid(url: str, tmp: Path) -> None:
    settings = await _setup(url, tmp)
    conn = await db.connect(url, "invoicing")
    try:
        paid = (await _request(conn, settings, _ask("8001", "p", "CZK500"))).invoice_number
        cancelled = (await _request(conn, settings, _ask("8001", "q", "CZK200"))).invoice_number
        await service.billing_run(conn, settings, "2027-03", date(2027, 3, 10), NOW)
        periodic = await conn.fetchval(
            "SELECT invoice_number FROM invoices WHERE kind = 'periodic' AND contract = '8001'"
        )
        assert paid and cancelled and periodic

        async def settle(number: str, amount: int, paid_minor: int, day: date) -> None:
            data = InvoiceSettled(
                contract="8001", invoice_number=number, ss=number, amount_minor=amount,
                paid_minor=paid_minor, currency="CZK", settled_on=day, within_tolerance_minor=0,
            )  # fmt: skip
            event = envelope("invoice.settled.v1", "/services/payments", "8001", data, NOW)
            await _unit(conn, NOW, lambda u: topups.on_settled(u, Run.of(event, data)))

        await settle(paid, 50000, 50000, date(2027, 3, 12))
        await settle(paid, 50000, 50000, date(2027, 3, 12))  # delivered again
        await settle(periodic, 49900, 49900, date(2027, 3, 12))  # not a top-up
        await settle(cancelled, 0, 0, date(2027, 3, 13))  # fully credited: nothing paid
        # the payment reversed and the invoice paid again: the credit was given already
        reopened = InvoiceReopened(
            contract="8001", invoice_number=paid, ss=paid, amount_minor=50000, paid_minor=0,
            remaining_minor=50000, currency="CZK", reason="payment reversed",
        )  # fmt: skip
        event = envelope("invoice.reopened.v1", "/services/payments", "8001", reopened, NOW)
        await _unit(conn, NOW, lambda u: service.on_reopened(u, Run.of(event, reopened)))
        await settle(paid, 50000, 50000, date(2027, 3, 20))
        credits = [
            VoipCreditPurchased.model_validate(d)
            for d in await _events(conn, "voip_credit.purchased.v1")
        ]
        assert [
            (c.invoice_number, c.request_id, c.amount_minor, c.currency, c.paid_on) for c in credits
        ] == [(paid, "p", 50000, "CZK", date(2027, 3, 12))]
        assert (
            await conn.fetchval("SELECT status FROM invoices WHERE invoice_number = $1", paid)
            == "paid"
        )
    finally:
        await conn.close()


def test_top_up_commands(env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    contracts = tmp_path / "contracts.json"
    contracts.write_text(json.dumps(CONTRACTS), encoding="utf-8")
    assert billing(capsys, "contracts", "load", str(contracts))[0] == 0

    code, out, _ = billing(
        capsys,
        "topup",
        "request",
        "8001",
        "--coupon",
        "CZK500",
        "--request-id",
        "x1",
        "--operator",
        "olga",
    )
    assert code == 0 and "for 500.00 CZK of VoIP credit, contract 8001, VS 8001 SS" in out
    code, again, _ = billing(
        capsys, "topup", "request", "8001", "--coupon", "CZK500", "--request-id", "x1"
    )
    assert code == 0 and "answered before" in again and again.split()[1] == out.split()[1]
    code, out, _ = billing(capsys, "topup", "request", "8001", "2500.00", "--operator", "olga")
    assert code == 0 and "2500.00 CZK" in out  # an operator's: any amount, no cap

    code, _, err = billing(capsys, "topup", "request", "8001", "--coupon", "NOPE")
    assert code == 65 and "top-up refused (unknown_coupon)" in one_line(err)
    code, _, err = billing(capsys, "topup", "request", "4242", "--coupon", "CZK500")
    assert code == 66 and "no contract 4242" in one_line(err)
    code, _, err = billing(capsys, "topup", "request", "8001")
    assert code == 64 and "AMOUNT or --coupon" in one_line(err)
    code, _, err = billing(capsys, "topup", "request", "8001", "1e3")
    assert code == 64 and "AMOUNT '1e3'" in one_line(err)

    code, out, _ = billing(
        capsys, "topup", "cap", "8001", "3000.00", "--reason", "firma", "--operator", "olga"
    )
    assert code == 0 and out.strip() == (
        "contract 8001: self-service top-ups up to 3000.00 CZK a month"
        " (was the default 1000.00 CZK)"
    )
    code, _, err = billing(capsys, "topup", "cap", "4242", "3000.00")
    assert code == 66

    code, out, _ = billing(capsys, "topup", "list", "8001", "--json")
    shown = json.loads(out)
    assert (shown["cap_minor"], shown["own_cap"], shown["issued_minor"]) == (300000, True, 0)
    assert [(t["requested_by"], t["amount_minor"], t["reason_code"]) for t in shown["topups"]] == [
        ("operator", 50000, None), ("operator", 250000, None), ("operator", None, "unknown_coupon")
    ]  # fmt: skip
    code, out, _ = billing(capsys, "topup", "list", "8001")
    assert code == 0 and "0.00 CZK of 3000.00 CZK (its own cap), 3000.00 CZK left" in out

    code, out, _ = billing(capsys, "audit", "log", "8001", "--json")
    actions = [e["action"] for e in json.loads(out)]
    assert actions.count("topup-request") == 4 and actions.count("topup-cap") == 1
