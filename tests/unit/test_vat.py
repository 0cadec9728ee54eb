"""VAT as data: rates per country on each side of their change dates, treatments, notes,
rounding."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.invoicing import vat


@pytest.mark.parametrize(
    ("country", "category", "day", "expected"),
    [
        # CZ: 15 % and 10 % merged into 12 % on 2024-01-01, books to 0 %
        ("CZ", "standard", date(2023, 12, 31), 21),
        ("CZ", "standard", date(2024, 1, 1), 21),
        ("CZ", "reduced", date(2023, 12, 31), 15),
        ("CZ", "reduced", date(2024, 1, 1), 12),
        ("CZ", "reduced2", date(2023, 12, 31), 10),
        ("CZ", "zero", date(2024, 1, 1), 0),
        # SK: 20 -> 23 %, 10 -> 19 % on 2025-01-01; 5 % since 2023
        ("SK", "standard", date(2024, 12, 31), 20),
        ("SK", "standard", date(2025, 1, 1), 23),
        ("SK", "reduced", date(2024, 12, 31), 10),
        ("SK", "reduced", date(2025, 1, 1), 19),
        ("SK", "reduced2", date(2023, 1, 1), 5),
        ("SK", "reduced2", date(2025, 1, 1), 5),
        # HU: 27/18/5 (internet access at 5 % since 2018)
        ("HU", "standard", date(2026, 12, 31), 27),
        ("HU", "reduced", date(2026, 12, 31), 18),
        ("HU", "reduced2", date(2018, 1, 1), 5),
    ],
)
def test_rate_by_country_category_and_tax_point(
    country: str, category: str, day: date, expected: int
) -> None:
    assert vat.rate(country, category, day) == Decimal(expected)


@pytest.mark.parametrize(
    ("country", "category", "day", "message"),
    [
        ("CZ", "reduced2", date(2024, 1, 1), "merged into 12 %"),
        ("CZ", "zero", date(2023, 12, 31), "no 'zero' VAT rate on 2023-12-31"),
        ("SK", "reduced2", date(2022, 12, 31), "no 'reduced2' VAT rate"),
        ("CZ", "standard", date(2014, 12, 31), "no VAT rates for CZ before 2015-01-01"),
        ("AT", "standard", date(2026, 1, 1), "country 'AT'"),
        ("CZ", "luxury", date(2026, 1, 1), "VAT category 'luxury'"),
    ],
)
def test_a_rate_the_data_does_not_have_is_refused_with_the_reason(
    country: str, category: str, day: date, message: str
) -> None:
    with pytest.raises(vat.VatError, match=message):
        vat.rate(country, category, day)


def test_treatment_domestic_reverse_charge_and_not_a_payer() -> None:
    assert vat.treatment("CZ", True, "CZ", None) == "domestic"
    assert vat.treatment("CZ", True, "CZ", "CZ25596641") == "domestic"
    assert vat.treatment("CZ", True, "SK", "SK2020202020") == "reverse_charge"
    assert vat.treatment("CZ", False, "SK", "SK2020202020") == "not_vat_payer"
    with pytest.raises(vat.VatError, match="OSS"):
        vat.treatment("SK", True, "AT", None)
    with pytest.raises(vat.VatError, match="outside the EU"):
        vat.treatment("HU", True, "UA", "UA123")


def test_legal_notes_carry_the_supplier_countrys_wording_then_the_customers() -> None:
    assert vat.legal_notes("CZ", "reverse_charge", "cs") == [vat.REVERSE_CHARGE_NOTE["cs"]]
    assert vat.legal_notes("CZ", "reverse_charge", "sk") == [
        vat.REVERSE_CHARGE_NOTE["cs"],
        vat.REVERSE_CHARGE_NOTE["sk"],
    ]
    assert "Daň odvede zákazník" in vat.legal_notes("CZ", "reverse_charge", "en")[0]
    assert "Prenesenie daňovej povinnosti" in vat.legal_notes("SK", "reverse_charge", "sk")[0]
    assert "Fordított adózás" in vat.legal_notes("HU", "reverse_charge", "hu")[0]
    assert vat.legal_notes("HU", "not_vat_payer", "en")[1] == vat.NOT_VAT_PAYER_NOTE["en"]
    assert vat.legal_notes("SK", "domestic", "sk") == []


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (Decimal("10.5"), 1, 11),  # half up
        (Decimal("10.49"), 1, 10),
        (Decimal("-10.5"), 1, -11),  # away from zero
        (Decimal("149.99"), 100, 100),  # whole forints
        (Decimal("150"), 100, 200),
    ],
)
def test_round_minor(amount: Decimal, unit: int, expected: int) -> None:
    assert vat.round_minor(amount, unit) == expected


def test_vat_of_rounds_to_the_countrys_unit() -> None:
    assert vat.vat_of(41_300, Decimal(21)) == 8_673  # 413.00 CZK -> 86.73
    assert vat.vat_of(378_387, Decimal(27), vat.ROUNDING["HU"].unit_minor) == 102_200  # 1,022 Ft
