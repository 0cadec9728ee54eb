"""Postpaid VoIP calls on the periodic invoice (docs/invoices.md#postpaid-calls) against
the real PostgreSQL: voip.calls_rated consumed by invoicing (postpaid only, each call id
once), the next billing run's lines per month and destination at the standard VAT rate,
each call billed exactly once, a prepaid voip service's flag carried by contract.upserted."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from schemas import events as ev
from schemas.envelope import envelope
from services.invoicing import service
from services.invoicing.settings import InvoicingSettings
from services.runtime import db
from services.runtime.runs import Run
from services.runtime.unit import Unit
from tests.integration.test_invoice_documents import _load

NOW = datetime(2027, 3, 1, 7, tzinfo=UTC)
ADDRESS = {"street": "Dlouhá", "building_number": "7", "city": "Brno", "postal_code": "602 00"}
VOIP = {"kind": "voip", "description": "VoIP paušál", "unit_price_minor": 10000}
CONTRACTS: list[dict[str, Any]] = [
    {"contract": "7101", "customer_name": "Jana Nováková", "currency": "CZK",
     "address": ADDRESS, "services": [VOIP]},
    {"contract": "7102", "customer_name": "Firma s.r.o.", "currency": "CZK",
     "address": ADDRESS, "company_id": "27082440", "tax_id": "CZ27082440",
     "prices_include_vat": False, "services": [VOIP]},
    {"contract": "7103", "customer_name": "Petr Malý", "currency": "CZK",
     "address": ADDRESS, "services": [{**VOIP, "prepaid": True}]},
]  # fmt: skip


def _call(ident: str, at: datetime, seconds: int, price: int, destination: str, **kw: Any) -> Any:
    return ev.RatedCall(
        call_id=ident, started_at=at, seconds=seconds, caller="+420212345678",
        number="+420601234567", destination=destination, prefix="4206", price_minor=price,
        currency="CZK", prepaid=kw.get("prepaid", False),
    )  # fmt: skip


def _rated(contract: str, *calls: Any) -> ev.CallsRated:
    return ev.CallsRated(contract=contract, import_id="cdr-1", calls=list(calls))


async def _feed(conn: asyncpg.Connection, *items: ev.CallsRated) -> None:
    for data in items:
        event = envelope("voip.calls_rated.v1", "/test", None, data, NOW)
        async with conn.transaction():
            unit = Unit(conn, NOW, "/test")
            await service.on_calls_rated(unit, Run.of(event, data))
            await unit.flush()


def _lines(row: Any) -> list[tuple[str, int]]:
    return [(x["description"], x["base_minor"] + x["vat_minor"]) for x in row["lines"]]


def test_postpaid_calls_on_the_next_invoice_once_prepaid_never(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_calls(database_url, tmp_path))


async def _calls(url: str, tmp: Path) -> None:
    await db.migrate(url, "invoicing")
    conn = await db.connect(url, "invoicing")
    try:
        await _load(conn, tmp, CONTRACTS)
        told = {
            d["contract"]: d
            for d in (
                json.loads(bytes(r["value"]))["data"]
                for r in await conn.fetch(
                    "SELECT value FROM outbox WHERE event_type = 'contract.upserted.v1'"
                )
            )
        }
        assert [s["prepaid"] for s in told["7103"]["services"]] == [True]
        assert [s["prepaid"] for s in told["7101"]["services"]] == [False]

        jan = datetime(2027, 1, 10, 9, tzinfo=UTC)
        mobile = [_call(f"m{i}", jan + timedelta(hours=i), 170, 300, "Mobilní sítě CZ")
                  for i in range(12)]  # fmt: skip  # 12 x 170 s = 34 min, 36.00 without VAT
        fixed = [_call(f"f{i}", jan, 60, 100, "Pevné sítě CZ") for i in range(2)]
        # January 31 in UTC, February 1 at 00:30 in Prague: February's, the next invoice's
        february = _call("feb", datetime(2027, 1, 31, 23, 30, tzinfo=UTC), 30, 50, "Pevné sítě CZ")
        prepaid = _call("pre", jan, 600, 9900, "Mobilní sítě CZ", prepaid=True)
        batches = [
            _rated("7101", *mobile, *fixed, february, prepaid),
            _rated("7102", *mobile),
            _rated("7103", _call("p1", jan, 600, 9900, "Mobilní sítě CZ", prepaid=True)),
        ]
        await _feed(conn, *batches)
        await _feed(conn, *batches)  # delivered twice: each call id once
        assert await conn.fetchval("SELECT count(*) FROM voip_calls") == 12 + 2 + 1 + 12

        settings = InvoicingSettings(database_url=url)
        await service.billing_run(conn, settings, "2027-02", date(2027, 3, 1), NOW)
        rows = {
            r["contract"]: r
            for r in await conn.fetch("SELECT contract, invoice_number, lines FROM invoices")
        }
        consumer = _lines(rows["7101"])
        # prices include VAT: 36.00 + 21 % = 43.56; 2.00 + 21 % = 2.42
        assert consumer[1:] == [
            ("Hovory 1/2027: Mobilní sítě CZ, 12 hovorů, 34 min", 4356),
            ("Hovory 1/2027: Pevné sítě CZ, 2 hovory, 2 min", 242),
        ]
        business = rows["7102"]["lines"]  # without VAT: 36.00 and 21 % on it
        assert [(x["description"], x["base_minor"], x["vat_minor"]) for x in business[1:]] == [
            ("Hovory 1/2027: Mobilní sítě CZ, 12 hovorů, 34 min", 3600, 756)
        ]
        assert len(rows["7103"]["lines"]) == 1  # prepaid calls: never on an invoice
        billed = await conn.fetch(
            "SELECT call_id, billed_on FROM voip_calls WHERE contract = '7101' ORDER BY call_id"
        )
        number = rows["7101"]["invoice_number"]
        assert {r["call_id"]: r["billed_on"] for r in billed}["feb"] is None
        assert {r["billed_on"] for r in billed if r["call_id"] != "feb"} == {number}

        await _feed(conn, *batches)  # delivered again after billing: still once
        await service.billing_run(conn, settings, "2027-03", date(2027, 4, 1), NOW)
        march = await conn.fetchrow(
            "SELECT invoice_number, lines FROM invoices WHERE contract = '7101' AND period = $1",
            "2027-03",
        )
        assert _lines(march)[1:] == [("Hovory 2/2027: Pevné sítě CZ, 1 hovor, 1 min", 61)]
        assert (
            await conn.fetchval("SELECT billed_on FROM voip_calls WHERE call_id = 'feb'")
            == march["invoice_number"]
        )
    finally:
        await conn.close()
