"""The pure parts of the zone's usage pages and of postpaid call lines: periods from a
query string, byte sizes, durations, pages, the top-up cap shown, the call lines' words
and VAT, and the zone's reading of the coupon list."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.invoicing import billed
from services.zone import domain
from services.zone.settings import ZoneSettings

TODAY = date(2026, 12, 20)


@pytest.mark.parametrize(
    ("month", "first", "last", "expected"),
    [
        (None, None, None, (date(2026, 12, 1), date(2026, 12, 31), "2026-12")),
        ("2026-02", None, None, (date(2026, 2, 1), date(2026, 2, 28), "2026-02")),
        ("2026-11", "2026-11-03", "2026-11-05", (date(2026, 11, 3), date(2026, 11, 5), None)),
    ],
)
def test_period_picked(
    month: str | None, first: str | None, last: str | None, expected: tuple
) -> None:  # type: ignore[type-arg]
    p = domain.pick_period(month, first, last, TODAY)
    assert (p.first, p.last, p.month) == expected


@pytest.mark.parametrize(
    ("month", "first", "last", "key"),
    [
        ("2026-13", None, None, "bad_month"),
        ("26-1", None, None, "bad_month"),
        ("1999-12", None, None, "bad_month"),
        (None, "2026-02-30", "2026-03-01", "bad_day"),
        (None, "2026-03-01", None, "bad_day"),
        (None, "20260301", "2026-03-02", "bad_day"),
        (None, "2026-03-02", "2026-03-01", "bad_order"),
        (None, "2025-01-01", "2026-01-02", "too_long"),
    ],
)
def test_bad_period_named(month: str | None, first: str | None, last: str | None, key: str) -> None:
    with pytest.raises(domain.PeriodProblem) as e:
        domain.pick_period(month, first, last, TODAY)
    assert e.value.key == key


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, (Decimal(0), "B")),
        (999, (Decimal(999), "B")),
        (1000, (Decimal("1.00"), "kB")),
        (1_234_567, (Decimal("1.23"), "MB")),
        (45_670_000_000, (Decimal("45.7"), "GB")),
        (999_999_999, (Decimal("1000"), "MB")),
    ],
)
def test_byte_size(count: int, expected: tuple[Decimal, str]) -> None:
    assert domain.byte_size(count) == expected


def test_duration_minutes_and_pages() -> None:
    assert [domain.duration(s) for s in (0, 61, 3600, 3725)] == [
        "0:00",
        "1:01",
        "1:00:00",
        "1:02:05",
    ]
    assert [domain.minutes(s) for s in (0, 1, 60, 61)] == [0, 1, 1, 2]
    assert domain.page_number(None, 0) == 1 and domain.page_number("2", 101) == 2
    for bad in ("3", "0", "-1", "x", "1" * 20):
        with pytest.raises(domain.PeriodProblem):
            domain.page_number(bad, 101)


def test_cap_shown_from_the_answers_of_this_month() -> None:
    answers = [("2026-12", 100000, 30000), ("2026-12", None, None), ("2026-11", 80000, 0)]
    assert domain.cap_view("2026-12", answers) == domain.CapView(True, 100000, 30000)
    assert domain.cap_view("2027-01", answers) == domain.CapView(False, 100000, None)
    assert domain.cap_view("2027-01", []) == domain.CapView(False, None, None)


def test_call_lines_per_month_and_destination_in_the_invoices_language() -> None:
    groups = [
        billed.CallGroup("2026-11", "Pevné sítě CZ", 2, 61, 200),
        billed.CallGroup("2026-10", "Mobilní sítě CZ", 12, 2040, 3600),
    ]
    items = billed.call_items(groups, "cs", Decimal(21))
    assert [(i.description, i.unit_price_minor, i.vat_category) for i in items] == [
        ("Hovory 10/2026: Mobilní sítě CZ, 12 hovorů, 34 min", 4356, "standard"),
        ("Hovory 11/2026: Pevné sítě CZ, 2 hovory, 2 min", 242, "standard"),
    ]
    assert [i.unit_price_minor for i in billed.call_items(groups, "en", None)] == [3600, 200]
    assert billed.call_items(groups[:1], "en", None)[0].description == (
        "Calls 11/2026: Pevné sítě CZ, 2 calls, 2 min"
    )
    assert [billed.calls_word(n, "sk") for n in (1, 3, 5)] == ["1 hovor", "3 hovory", "5 hovorov"]


def test_prepaid_only_for_a_voip_service() -> None:
    billed.Service(kind="voip", description="VoIP", unit_price_minor=0, prepaid=True)
    with pytest.raises(ValueError, match="prepaid is for a voip service"):
        billed.Service(kind="tariff", description="Internet", unit_price_minor=1, prepaid=True)


def test_zone_reads_the_coupons_as_invoicing_does() -> None:
    s = ZoneSettings(bank_accounts={"CZK": "2001234561/2010"})
    assert [c.code for c in s.coupons_in("CZK")] == ["CZK200", "CZK500", "CZK1000"]
    assert s.coupons_in("EUR") == []  # no EUR account: not offered
    with pytest.raises(ValueError, match="BILLING_TOPUP_COUPONS: EUR10 \\(EUR\\): no account"):
        ZoneSettings(bank_accounts={"CZK": "2001234561/2010"}, topup_coupons={"EUR10": "10.00 EUR"})
    with pytest.raises(ValueError, match="coupon X1: 'ten', expected a decimal amount"):
        ZoneSettings(topup_coupons={"X1": "ten CZK"})
