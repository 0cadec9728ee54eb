"""The operator's VoIP top-up coupons (``BILLING_TOPUP_COUPONS``): code -> "AMOUNT CURRENCY",
the invoice's total with VAT. One reading for both services that need the list: invoicing
decides requests against it, the customer zone offers it (the zone imports no other
service, so the list and its check live with the event contracts that name coupons)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from schemas.events import CouponCode
from schemas.money import AmountError, parse_minor

# The coupons offered by default, whole units of each currency (200.00 CZK ...).
COUPON_AMOUNTS = {"CZK": (200, 500, 1000), "EUR": (10, 20, 40), "HUF": (3000, 7500, 15000)}


@dataclass(frozen=True)
class Coupon:
    """A top-up the operator offers: its code and the amount (the invoice's total)."""

    code: str
    amount_minor: int
    currency: str


def default_coupons() -> dict[str, str]:
    return {
        f"{currency}{amount}": f"{amount}.00 {currency}"
        for currency, amounts in COUPON_AMOUNTS.items()
        for amount in amounts
    }


_COUPON_CODE = TypeAdapter(CouponCode)


def parse_coupon(code: str, text: str) -> Coupon:
    """``"200.00 CZK"`` under ``code``, or ValueError naming the coupon and what is wrong."""
    try:
        _COUPON_CODE.validate_python(code)
    except ValidationError:
        raise ValueError(f"coupon code {code!r}: expected letters, digits, _ and -") from None
    amount, _, currency = text.strip().partition(" ")
    if not (len(currency) == 3 and currency.isascii() and currency.isupper()):
        raise ValueError(f"coupon {code}: {text!r}, expected an amount and currency: 200.00 CZK")
    try:
        minor = parse_minor(amount, signed=False)
    except AmountError as e:
        raise ValueError(f"coupon {code}: {amount!r}, expected {e.expected}") from None
    if minor <= 0:
        raise ValueError(f"coupon {code}: {text!r}, expected an amount above 0")
    return Coupon(code, minor, currency)


def payable_coupons(
    coupons: Mapping[str, str], given: bool, accounts: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The coupons offered, and those of a currency without an account to be paid to
    ("CZK200 (CZK)"). Not ``given`` (the default list): only the currencies the operator
    has an account in are offered (a Czech ISP with a CZK account offers CZK coupons and
    starts), so the second list is empty; given, every coupon stays and the second list
    names those that could never be paid (the caller refuses to start)."""
    offered = {
        code: text
        for code, text in coupons.items()
        if given or parse_coupon(code, text).currency in accounts
    }
    unpaid = sorted(
        f"{c.code} ({c.currency})"
        for c in (parse_coupon(code, text) for code, text in offered.items())
        if c.currency not in accounts
    )
    return offered, unpaid


def checked_coupons(
    coupons: Mapping[str, str], given: bool, accounts: Mapping[str, str], names: tuple[str, str]
) -> dict[str, str]:
    """The coupons offered (``payable_coupons``), each checked (``parse_coupon``); a bad
    coupon, or one that could never be paid, raises ValueError naming it and ``names``
    (the variables of the coupons and of the accounts). Invoicing and the zone read the
    same variable through this one check, so both start, or both refuse, alike."""
    for code, text in coupons.items():
        parse_coupon(code, text)
    offered, unpaid = payable_coupons(coupons, given, accounts)
    if unpaid:
        raise ValueError(
            f"{names[0]}: {', '.join(unpaid)}: no account of that currency in {names[1]} to be"
            " paid to"
        )
    return offered
