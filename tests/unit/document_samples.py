"""Suppliers, customers and invoices of the three countries, for the document tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from services.invoicing.documents import (
    Address,
    Customer,
    Document,
    InvoiceSpec,
    Item,
    Supplier,
    build_invoice,
    prorate,
    service_items,
)

SUPPLIERS = {
    "CZ": Supplier(
        name="Síťař s.r.o.",
        address=Address("Vinohradská", "12", "Praha 2", "120 00", "CZ"),
        company_id="25596641",
        tax_id="CZ25596641",
        vat_id="CZ25596641",
        vat_payer=True,
        register_entry="C 12345 vedená u Městského soudu v Praze",
        bank_account="19-2000145399/0800",
        bic="GIBACZPX",
        email="fakturace@sitar.example",
    ),
    "SK": Supplier(
        name="Sieťka s.r.o.",
        address=Address("Obchodná", "5", "Bratislava", "811 06", "SK"),
        company_id="35763469",
        tax_id="2020202020",
        vat_id="SK2020202020",
        vat_payer=True,
        register_entry="Obchodný register Mestského súdu Bratislava III, oddiel Sro, vložka 1234/B",
        bank_account="SK2411000000002612345678",
        bic="TATRSKBX",
    ),
    "HU": Supplier(
        name="Hálózat Kft.",
        address=Address("Váci út", "1", "Budapest", "1062", "HU"),
        company_id="01-09-123456",
        tax_id="12345678-2-41",
        vat_id="HU12345678",
        vat_payer=True,
        register_entry="Fővárosi Törvényszék Cégbírósága, Cg. 01-09-123456",
        bank_account="HU42117730161111101800000000",
        bic="OTPVHUHB",
    ),
}

CUSTOMERS = {
    "CZ": Customer("Jana Nováková", Address("Dlouhá", "7", "Brno", "602 00", "CZ")),
    "SK": Customer("Ján Novák", Address("Hlavná", "3", "Košice", "040 01", "SK")),
    "HU": Customer("Kovács Anna", Address("Fő utca", "2", "Szeged", "6720", "HU")),
}
LANGUAGE = {"CZ": "cs", "SK": "sk", "HU": "hu"}
CURRENCY = {"CZ": "CZK", "SK": "EUR", "HU": "HUF"}
INTERNET_VAT = {"CZ": "standard", "SK": "standard", "HU": "reduced2"}  # HU: 5 % since 2018
PRICE = {"CZ": 49_900, "SK": 1_990, "HU": 690_000}  # 499 CZK, 19.90 EUR, 6,900 HUF a month


def invoice(
    country: str = "CZ",
    *,
    language: str | None = None,
    customer: Customer | None = None,
    items: list[Item] | None = None,
    tax_point: date = date(2026, 12, 31),
    number: str = "2026000001",
) -> Document:
    """December 2026: the internet tariff from the 15th (17/31), a static IP for the whole
    month and an installation (two hours) as a one-off item."""
    price = PRICE[country]
    if items is None:
        items = [
            *service_items(
                "Internet 300/30 Mb/s",
                prorate(
                    date(2026, 12, 1), date(2026, 12, 31), price, active_from=date(2026, 12, 15)
                ),
                INTERNET_VAT[country],
            ),
            Item(
                "Veřejná IP adresa",
                Decimal(1),
                "month",
                price // 5,
                "standard",
                period=(date(2026, 12, 1), date(2026, 12, 31)),
            ),
            Item("Instalace", Decimal(2), "hour", price * 2, "standard"),
        ]
    return build_invoice(
        InvoiceSpec(
            number=number,
            contract="1001",
            supplier=SUPPLIERS[country],
            customer=customer or CUSTOMERS[country],
            language=language or LANGUAGE[country],
            currency=CURRENCY[country],
            issued_on=date(2027, 1, 2),
            tax_point_on=tax_point,
            due_on=date(2027, 1, 16),
            vs="1001",
            ss=number,
            items=items,
        )
    )


def non_payer_invoice() -> Document:
    """A Czech supplier who is not a VAT payer: no VAT, the note instead."""
    return build_invoice(
        InvoiceSpec(
            number="2026000009",
            contract="1009",
            supplier=replace(SUPPLIERS["CZ"], vat_payer=False, vat_id=None),
            customer=CUSTOMERS["CZ"],
            language="cs",
            currency="CZK",
            issued_on=date(2027, 1, 2),
            tax_point_on=date(2026, 12, 31),
            due_on=date(2027, 1, 16),
            vs="1009",
            ss="2026000009",
            items=[Item("Internet", Decimal(1), "month", 49_900)],
        )
    )
