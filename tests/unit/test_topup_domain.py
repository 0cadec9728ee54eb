"""VoIP credit top-ups decided (issue 29 item 6): the monthly cap of self-service top-ups,
the operator's month, and every refusal with its code and a sentence that says what is
left. Pure: ``domain.decide_topup``, ``local_day``, ``month_of``, ``topup_cap``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from schemas.events import TopupRequested
from services.invoicing.domain import (
    Coupon,
    TopupAsk,
    TopupFacts,
    TopupGranted,
    TopupRefusal,
    decide_topup,
    local_day,
    month_of,
    topup_cap,
)
from services.invoicing.settings import InvoicingSettings

COUPONS = {
    c.code: c
    for c in (
        Coupon("CZK200", 20000, "CZK"),
        Coupon("CZK500", 50000, "CZK"),
        Coupon("CZK1000", 100000, "CZK"),
        Coupon("EUR10", 1000, "EUR"),
    )
}
CAP = 100000  # 1,000.00 CZK


def facts(issued: int = 0, cap: int = CAP, active: bool = True) -> TopupFacts:
    return TopupFacts(known=True, active=active, currency="CZK", cap_minor=cap, issued_minor=issued)


def coupon(code: str, self_service: bool = True) -> TopupAsk:
    return TopupAsk(code, None, None, self_service)


def amount(minor: int, currency: str = "CZK", self_service: bool = True) -> TopupAsk:
    return TopupAsk(None, minor, currency, self_service)


@pytest.mark.parametrize(
    ("ask", "issued", "cap", "granted", "left"),
    [
        (coupon("CZK500"), 0, CAP, 50000, 50000),
        (coupon("CZK500"), 50000, CAP, 50000, 0),  # exactly up to the cap
        (coupon("CZK1000"), 0, CAP, 100000, 0),
        (amount(20000), 80000, CAP, 20000, 0),  # an amount a coupon offers
        (coupon("CZK1000"), 100000, 300000, 100000, 100000),  # a cap an operator raised
        (coupon("CZK1000", self_service=False), 100000, CAP, 100000, None),  # operator: no cap
        (amount(12345, self_service=False), 0, CAP, 12345, None),  # operator: any amount
    ],
)
def test_a_top_up_under_the_cap_is_granted_and_says_what_is_left(
    ask: TopupAsk, issued: int, cap: int, granted: int, left: int | None
) -> None:
    decided = decide_topup("1001", "2027-03", ask, facts(issued, cap), COUPONS)
    assert isinstance(decided, TopupGranted)
    assert (decided.amount_minor, decided.currency, decided.left_minor) == (granted, "CZK", left)
    assert decided.cap_minor == (cap if ask.self_service else None)


@pytest.mark.parametrize(
    ("ask", "known_facts", "code", "words"),
    [
        (coupon("CZK500"), TopupFacts(False, False, "", 0, 0), "unknown_contract", "no contract"),
        (coupon("CZK500"), facts(active=False), "inactive_contract", "is not active"),
        (coupon("CZK300"), facts(), "unknown_coupon", "CZK200, CZK500, CZK1000"),
        (coupon("EUR10"), facts(), "wrong_currency", "10.00 EUR asked"),
        (amount(1000, "EUR"), facts(), "wrong_currency", "billed in CZK"),
        (amount(30000), facts(), "amount_not_offered", "200.00 CZK, 500.00 CZK, 1000.00 CZK"),
        (
            coupon("CZK500"),
            facts(issued=80000),
            "over_cap",
            "come to 800.00 CZK, 200.00 CZK is left this month and 500.00 CZK was asked",
        ),
        (coupon("CZK200"), facts(cap=0), "over_cap", "cap of 0.00 CZK"),
    ],
)
def test_each_refusal_has_its_code_and_a_sentence(
    ask: TopupAsk, known_facts: TopupFacts, code: str, words: str
) -> None:
    decided = decide_topup("1001", "2027-03", ask, known_facts, COUPONS)
    assert isinstance(decided, TopupRefusal)
    assert decided.code == code and words in decided.reason, decided.reason
    if code == "over_cap":
        assert decided.cap_minor == known_facts.cap_minor
        assert decided.left_minor == max(0, known_facts.cap_minor - known_facts.issued_minor)


def test_the_cap_counts_what_was_issued_not_what_was_paid_and_never_goes_below_zero() -> None:
    # a cap lowered below what was issued already: nothing left, not a negative amount
    decided = decide_topup("1001", "2027-03", coupon("CZK200"), facts(150000), COUPONS)
    assert isinstance(decided, TopupRefusal) and decided.left_minor == 0
    assert "0.00 CZK is left" in decided.reason


@pytest.mark.parametrize(
    ("now", "country", "day"),
    [
        # 23:30 UTC on the last of February is half past midnight on 1 March in Prague
        (datetime(2027, 2, 28, 23, 30, tzinfo=UTC), "CZ", date(2027, 3, 1)),
        (datetime(2027, 2, 28, 22, 59, tzinfo=UTC), "CZ", date(2027, 2, 28)),
        # summer time: UTC+2
        (datetime(2027, 7, 31, 22, 0, tzinfo=UTC), "SK", date(2027, 8, 1)),
        (datetime(2027, 7, 31, 21, 59, tzinfo=UTC), "HU", date(2027, 7, 31)),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "CZ", date(2027, 1, 1)),  # a new year
    ],
)
def test_the_month_of_a_cap_is_the_operators(now: datetime, country: str, day: date) -> None:
    assert local_day(now, country) == day
    assert month_of(day) == f"{day.year:04d}-{day.month:02d}"


def test_a_time_without_its_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="with its zone"):
        local_day(datetime(2027, 3, 1, 0, 30), "CZ")


def test_a_contracts_own_cap_wins_over_its_currencys_default() -> None:
    defaults = {"CZK": 100000, "EUR": 4000}
    assert topup_cap(None, "CZK", defaults) == 100000
    assert topup_cap(250000, "CZK", defaults) == 250000
    assert topup_cap(0, "EUR", defaults) == 0  # an operator's 0: no self-service top-up
    assert topup_cap(None, "USD", defaults) == 0  # no default: none until one is set


def test_a_request_names_a_coupon_or_an_amount_with_its_currency() -> None:
    base = {
        "contract": "1001", "request_id": "3f7c-1", "requested_by": "customer", "who": "17",
        "requested_at": "2027-03-01T10:00:00Z",
    }  # fmt: skip
    TopupRequested.model_validate({**base, "coupon": "CZK500"})
    TopupRequested.model_validate({**base, "amount_minor": 50000, "currency": "CZK"})
    for wrong, words in (
        ({}, "a coupon, or amount_minor with currency"),
        ({"amount_minor": 50000}, "a coupon, or amount_minor with currency"),
        ({"coupon": "CZK500", "amount_minor": 50000, "currency": "CZK"}, "not both"),
        ({"coupon": "CZK 500"}, "coupon"),
        ({"amount_minor": 0, "currency": "CZK"}, "amount_minor"),
        ({"coupon": "CZK500", "request_id": ""}, "request_id"),
        ({"coupon": "CZK500", "who": "a\u202eb"}, r"U\+202E"),
    ):
        with pytest.raises(ValidationError, match=words):
            TopupRequested.model_validate({**base, **wrong})


@pytest.mark.parametrize(
    ("coupons", "words"),
    [
        ({"CZK200": "200 Kč"}, "coupon CZK200: '200 Kč', expected an amount and currency"),
        ({"CZK200": "1e5 CZK"}, "coupon CZK200: '1e5', expected a decimal amount"),
        ({"CZK200": "0.00 CZK"}, "expected an amount above 0"),
        ({"CZK 200": "200.00 CZK"}, "coupon code 'CZK 200'"),
        ({"GBP5": "5.00 GBP"}, "GBP5 (GBP): no account of that currency in BILLING_BANK_ACCOUNTS"),
    ],
)
def test_the_coupon_list_is_checked_at_start_naming_the_coupon(
    coupons: dict[str, str], words: str
) -> None:
    with pytest.raises(ValidationError) as e:
        InvoicingSettings(topup_coupons=coupons)
    assert words in str(e.value)


def test_the_default_coupons_and_caps() -> None:
    s = InvoicingSettings()
    assert {(c.amount_minor, c.currency) for c in s.coupons().values()} >= {
        (20000, "CZK"), (50000, "CZK"), (100000, "CZK"), (4000, "EUR"), (1500000, "HUF")
    }  # fmt: skip
    assert s.topup_cap_minor == {"CZK": 100000, "EUR": 4000, "HUF": 1500000}
    with pytest.raises(ValidationError, match="expected 0 or more"):
        InvoicingSettings(topup_cap_minor={"CZK": -1})


def test_the_default_coupons_are_those_of_the_operators_accounts() -> None:
    """A Czech ISP with a CZK account only starts, offering CZK coupons; a coupon list it
    sets itself in a currency it has no account of is refused (above)."""
    s = InvoicingSettings(bank_accounts={"CZK": "2001234561/2010"})
    assert sorted(s.coupons()) == ["CZK1000", "CZK200", "CZK500"]
