"""Invoices as documents against the real PostgreSQL: what a billing run bills (services,
price changes, mid-period starts and ends, one-off items), the lines and VAT it stores and
publishes, and documents made again from the stored rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from schemas.events import InvoiceIssued
from services.invoicing import contracts_file, service
from services.invoicing.settings import InvoicingSettings
from services.runtime import db
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
