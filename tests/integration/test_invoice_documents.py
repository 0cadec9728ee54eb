"""Invoices as documents against the real PostgreSQL: what a billing run bills (services,
price changes, mid-period starts and ends, one-off items), the lines and VAT it stores and
publishes, and documents made again from the stored rows."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from pypdf import PdfReader

from schemas.events import CreditNoteIssued, InvoiceIssued
from services.invoicing import contracts_file, isdoc, issued, service
from services.invoicing.settings import InvoicingSettings
from services.runtime import db
from services.runtime.errors import BadInput
from services.runtime.unit import Unit

NOW = datetime(2027, 3, 1, 7, tzinfo=UTC)
T = TypeVar("T")

ADDRESS = {"street": "Dlouhá", "building_number": "7", "city": "Brno", "postal_code": "602 00"}
CONTRACTS: list[dict[str, Any]] = [
    {
        "contract": "7001", "customer_name": "Jana Nováková", "currency": "CZK",
        "address": ADDRESS,
        "services": [
            # from the 15th of February 2027 (28 days): 14/28
            {"kind": "tariff", "description": "Internet 300/30", "unit_price_minor": 49900,
             "starts_on": "2027-02-15"},
            {"kind": "static_ip", "description": "Veřejná IP adresa", "unit_price_minor": 10000},
            # billed until the 10th: 10/28
            {"kind": "insurance", "description": "Pojištění routeru", "unit_price_minor": 5000,
             "ends_on": "2027-02-10"},
            # 200 CZK up to the 19th, 300 CZK from the 20th: 19/28 and 9/28
            {"kind": "voip", "description": "VoIP paušál", "unit_price_minor": 20000,
             "price_changes": [{"effective_on": "2027-02-20", "unit_price_minor": 30000}]},
        ],
        "one_off_items": [
            {"key": "install", "description": "Instalace", "unit_price_minor": 150000},
        ],
    },
    # a contracts file of before: one monthly price, VAT included
    {"contract": "7002", "customer_name": "Petr Malý", "currency": "CZK",
     "monthly_fee_minor": 49900},
    # a business customer's prices without VAT, and a quarterly service (billed in January,
    # April, July and October: nothing in February)
    {
        "contract": "7003", "customer_name": "Firma s.r.o.", "currency": "CZK",
        "address": ADDRESS, "company_id": "27082440", "tax_id": "CZ27082440",
        "prices_include_vat": False,
        "services": [
            {"description": "Internet 1 Gb/s", "unit_price_minor": 100000, "quantity": "2"},
            {"description": "Housing", "unit_price_minor": 300000, "every": "quarter"},
        ],
    },
]  # fmt: skip


async def _unit(conn: asyncpg.Connection, fn: Callable[[Unit], Awaitable[T]]) -> T:
    async with conn.transaction():
        u = Unit(conn, NOW, "/test")
        result = await fn(u)
        await u.flush()
        return result


async def _load(conn: asyncpg.Connection, tmp: Path, contracts: list[dict[str, Any]]) -> None:
    path = tmp / "contracts.json"
    path.write_text(json.dumps(contracts), encoding="utf-8")
    records = contracts_file.read(path)
    await _unit(conn, lambda u: service.load_contracts(u, records))


async def _events(conn: asyncpg.Connection, kind: str) -> list[dict[str, Any]]:
    """The data of the events of type ``kind`` in the outbox, in order."""
    rows = await conn.fetch("SELECT value FROM outbox WHERE event_type = $1 ORDER BY id", kind)
    return [json.loads(bytes(r["value"]))["data"] for r in rows]


def _line(row: dict[str, Any]) -> tuple[object, ...]:
    return (row["description"], row["share"], row["base_minor"], row["vat_minor"])


def test_a_run_bills_services_price_changes_and_mid_period_starts(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_services(database_url, tmp_path))


async def _services(url: str, tmp: Path) -> None:
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    try:
        await _load(conn, tmp, CONTRACTS)
        await _load(conn, tmp, CONTRACTS)  # the file again: its one-off item is added once
        settings = InvoicingSettings(database_url=url)
        run = await service.billing_run(conn, settings, "2027-02", date(2027, 3, 1), NOW)
        assert run.issued == 3
        rows = {
            r["contract"]: r
            for r in await conn.fetch(
                "SELECT contract, amount_minor, lines, recap, tax_point_on, treatment,"
                " prices_include_vat, customer FROM invoices"
            )
        }
        first = rows["7001"]
        # every line's price VAT included; the VAT of 21 % taken out of their sum, 209,950:
        # 21/121 of it, 36,437.6 -> 36,438, shared out over the lines by their amounts
        assert [_line(x) for x in first["lines"]] == [
            ("Internet 300/30", "1/2", 20620, 4330),  # 24,950 = 499.00 x 14/28
            ("Veřejná IP adresa", None, 8264, 1736),
            ("Pojištění routeru", "5/14", 1476, 310),  # 1,786 = 50.00 x 10/28
            ("VoIP paušál", "19/28", 11216, 2355),  # 13,571 = 200.00 x 19/28
            ("VoIP paušál", "9/28", 7969, 1674),  # 9,643 = 300.00 x 9/28
            ("Instalace", None, 123967, 26033),
        ]
        assert [(x["period_start"], x["period_end"]) for x in first["lines"][:2]] == [
            ("2027-02-15", "2027-02-28"),
            ("2027-02-01", "2027-02-28"),
        ]
        assert first["recap"] == [{"vat_rate": "21", "base_minor": 173512, "vat_minor": 36438}]
        assert first["amount_minor"] == 209950 == 173512 + 36438
        assert (first["tax_point_on"], first["treatment"]) == (date(2027, 2, 28), "domestic")
        assert first["customer"]["address"]["city"] == "Brno"

        legacy = rows["7002"]  # as before: the monthly price is what the invoice asks
        assert legacy["amount_minor"] == 49900
        assert [_line(x) for x in legacy["lines"]] == [("Připojení k internetu", None, 41240, 8660)]
        business = rows["7003"]  # 2 x 1,000.00 without VAT, plus 21 %
        assert [_line(x) for x in business["lines"]] == [("Internet 1 Gb/s", None, 200000, 42000)]
        assert business["amount_minor"] == 242000 and business["prices_include_vat"] is False

        # the event carries the same lines and recapitulation as the table
        issued = {
            e.contract: e
            for e in (
                InvoiceIssued.model_validate(d) for d in await _events(conn, "invoice.issued.v1")
            )
        }
        assert set(issued) == {"7001", "7002", "7003"}
        assert [x.model_dump(mode="json") for x in issued["7001"].lines or []] == first["lines"]
        assert [x.model_dump(mode="json") for x in issued["7001"].vat or []] == first["recap"]

        # March: the installation was billed once; the quarterly housing not yet
        await service.billing_run(conn, settings, "2027-03", date(2027, 3, 1), NOW)
        march = await conn.fetchval(
            "SELECT lines FROM invoices WHERE contract = '7001' AND period = '2027-03'"
        )
        assert [x["description"] for x in march] == [
            "Internet 300/30", "Veřejná IP adresa", "VoIP paušál"
        ]  # fmt: skip
        assert march[2]["unit_price_minor"] == 24793  # 300.00 with VAT: 247.93 without
        # April: the quarter's housing, billed for April to June
        await service.billing_run(conn, settings, "2027-04", date(2027, 4, 1), NOW)
        april = await conn.fetchval(
            "SELECT lines FROM invoices WHERE contract = '7003' AND period = '2027-04'"
        )
        assert [(x["description"], x["period_start"], x["period_end"]) for x in april] == [
            ("Internet 1 Gb/s", "2027-04-01", "2027-04-30"),
            ("Housing", "2027-04-01", "2027-06-30"),
        ]
    finally:
        await conn.close()


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def _issue(url: str, tmp: Path) -> None:
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    try:
        await _load(conn, tmp, CONTRACTS)
        settings = InvoicingSettings(database_url=url)
        await service.billing_run(conn, settings, "2027-02", date(2027, 3, 1), NOW)
    finally:
        await conn.close()


async def _render(url: str, number: str) -> tuple[bytes, bytes]:
    """PDF and ISDOC of ``number`` made on a connection of their own."""
    conn = await db.connect(url, "invoicing")
    try:
        doc = await issued.document(conn, number)
        return issued.render(doc, "pdf"), issued.render(doc, "isdoc")
    finally:
        await conn.close()


def test_documents_are_made_again_byte_for_byte_from_the_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_again(database_url, tmp_path, monkeypatch))


async def _again(url: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _issue(url, tmp)
    conn = await db.connect(url, "invoicing")
    number = await conn.fetchval("SELECT invoice_number FROM invoices WHERE contract = '7001'")
    await conn.close()
    pdf, xml = await _render(url, number)
    isdoc.validate(xml)  # every ISDOC written validates against the XSD
    text = _pdf_text(pdf)
    for needed in (
        "Síťař s.r.o.", "25596641", "CZ25596641", "Jana Nováková", "Dlouhá", number,
        "Internet 300/30", "VoIP paušál", "Instalace", "21 %", "1 735,12",  # base at 21 %
        "2 099,50",  # the total
    ):  # fmt: skip
        assert needed in text, needed
    # after the pool is gone, a new connection: the same bytes
    assert await _render(url, number) == (pdf, xml)

    # the supplier's configuration and the customer's address change later: the issued
    # document still says what it said (its parties as of its issue date)
    monkeypatch.setenv("BILLING_SUPPLIER_NAME", "Jiný dodavatel s.r.o.")
    moved = [{**CONTRACTS[0], "address": {**ADDRESS, "city": "Ostrava"}}]
    conn = await db.connect(url, "invoicing")
    try:
        await _load(conn, tmp, moved)
        settings = InvoicingSettings(database_url=url)
        await service.billing_run(conn, settings, "2027-03", date(2027, 3, 1), NOW)
        march = await conn.fetchval(
            "SELECT invoice_number FROM invoices WHERE contract = '7001' AND period = '2027-03'"
        )
    finally:
        await conn.close()
    assert await _render(url, number) == (pdf, xml)
    later = _pdf_text((await _render(url, march))[0])
    assert "Jiný dodavatel s.r.o." in later and "Ostrava" in later  # as of its own issue


def test_a_document_without_a_customer_address_is_refused_by_name(
    database_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        await _issue(database_url, tmp_path)
        conn = await db.connect(database_url, "invoicing")
        try:
            number = await conn.fetchval(
                "SELECT invoice_number FROM invoices WHERE contract = '7002'"
            )
            doc = await issued.document(conn, number)
        finally:
            await conn.close()
        with pytest.raises(BadInput, match=r"contract 7002.*customer\.address\.street: must not"):
            issued.render(doc, "pdf")

    asyncio.run(go())


def test_credit_notes_are_numbered_gapless_under_two_concurrent_issuers(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_concurrent_credit(database_url, tmp_path))


async def _concurrent_credit(url: str, tmp: Path) -> None:
    many = [
        {"contract": str(7100 + i), "customer_name": f"Zákazník {i}", "currency": "CZK",
         "monthly_fee_minor": 49900, "address": ADDRESS}
        for i in range(12)
    ]  # fmt: skip
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    await _load(conn, tmp, many)
    settings = InvoicingSettings(database_url=url)
    await service.billing_run(conn, settings, "2027-02", date(2027, 3, 1), NOW)
    numbers = [r["invoice_number"] for r in await conn.fetch("SELECT invoice_number FROM invoices")]
    await conn.close()
    issuers = [await db.connect(url, "invoicing") for _ in range(2)]

    async def credit(conn: asyncpg.Connection, number: str, asked: Any) -> str | None:
        try:
            async with conn.transaction():
                unit = Unit(conn, NOW, service.SOURCE)
                done = await issued.issue_credit_note(
                    unit, settings, number, date(2027, 3, 5), "reklamace", asked, "olga"
                )
                await asyncio.sleep(0.01)  # the other issuer waits on the series meanwhile
                await unit.flush()
                return done.note.number
        except BadInput:
            return None

    try:
        made: list[str | None] = []
        for i in range(0, len(numbers), 2):
            # two issuers at once, on two invoices; a third note asks too much and is
            # refused after it took its number, which goes back to the series
            made += await asyncio.gather(
                credit(issuers[0], numbers[i], [(1, 10000)]),
                credit(issuers[1], numbers[i + 1], None),
            )
            made.append(await credit(issuers[0], numbers[i + 1], [(1, 1)]))  # none left
        # two at once on one invoice: the second sees what the first credited
        made += await asyncio.gather(
            credit(issuers[0], numbers[0], None), credit(issuers[1], numbers[0], None)
        )
    finally:
        for c in issuers:
            await c.close()
    issued_notes = sorted(n for n in made if n is not None)
    assert issued_notes == [f"D2027{n:06d}" for n in range(1, 14)]  # 12 + the one of two
    conn = await db.connect(url, "invoicing")
    try:
        credited = await conn.fetchval(
            "SELECT sum(amount_minor) FROM credit_notes WHERE invoice_number = $1", numbers[0]
        )
        assert credited == 49900  # never more than the invoice
        events = [
            CreditNoteIssued.model_validate(d) for d in await _events(conn, "credit_note.issued.v1")
        ]
        assert sorted(e.credit_note_number for e in events) == issued_notes
        last = [e for e in events if e.invoice_number == numbers[0]][-1]
        assert (last.credited_minor, last.due_minor, last.invoice_amount_minor) == (49900, 0, 49900)
    finally:
        await conn.close()


def test_invoices_of_before_migration_007_say_they_have_no_document(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        every = db.migration_files("invoicing")
        before = [f for f in every if f.name < "007"]
        with monkeypatch.context() as m:
            m.setattr(
                db, "migration_files", lambda service: before if service == "invoicing" else every
            )
            await db.migrate(database_url, "invoicing")
        conn = await db.connect(database_url, "invoicing")
        try:
            await conn.execute(
                "INSERT INTO invoices (invoice_number, contract, vs, ss, period, issued_on, due_on,"
                " amount_minor, currency, created_at)"
                " VALUES ('2026000001', '1001', '1001', '2026000001', '2026-12', '2026-12-01',"
                " '2026-12-15', 49900, 'CZK', now())"
            )
            await db.migrate(database_url, "invoicing")
            row = await issued.invoice_row(conn, "2026000001")
            assert row["kind"] == "periodic" and row["lines"] is None
            with pytest.raises(BadInput, match="2026000001 has no document: issued before"):
                issued.invoice_document(row)
        finally:
            await conn.close()

    asyncio.run(go())
