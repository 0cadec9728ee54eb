"""Bounds on money, one place for every door it comes in by.

A bank cannot send more than it can print: ISO 20022 amounts carry at most 18 digits,
5 of them decimals (13 whole digits), SWIFT MT940 amounts 15 characters with the comma,
GPC 12 digits of minor units. ``MAX_AMOUNT_MINOR`` (10^14 - 1 minor units, just under a
trillion korun or euro) is above all of them, and far enough below PostgreSQL's bigint
(9.2 * 10^18) that sums of many never overflow a column: a contract's credit is held
under ``MAX_CREDIT_MINOR`` (the payments service queues a payment that would pass it).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import Field, Strict

MAX_AMOUNT_MINOR = 10**14 - 1
MAX_CREDIT_MINOR = 10**15 - 1  # ten payments of the largest size; bigint holds 9,000 times it

# Signed minor units in an external contract: a JSON integer, nothing coerced ("499.00",
# 499.0 and true are refused, not read as 499), within what a bank can send.
AmountMinor = Annotated[int, Strict(), Field(ge=-MAX_AMOUNT_MINOR, le=MAX_AMOUNT_MINOR)]

# Plain ASCII decimals only: no exponent, no "_" separators, no full-width or other
# Unicode digits (Python's Decimal and int() accept all of those).
_DECIMAL = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)
MAX_DIGITS = 40  # a longer number is refused before any arithmetic on it


class AmountError(ValueError):
    """``expected`` says what a valid amount looks like."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def parse_minor(text: str, exponent: int = 2, signed: bool = True) -> int:
    """``"1234.50"`` -> 123450 for a currency with ``exponent`` decimals, exactly (never a
    float), or ``AmountError``: not a plain decimal, too many decimals, or over the bound."""
    m = _DECIMAL.fullmatch(text)
    if m is None or len(text) > MAX_DIGITS:
        raise AmountError("a decimal amount such as 1234.50")
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if sign and not signed:
        raise AmountError("an amount without a sign")
    if len(frac.rstrip("0")) > exponent:
        raise AmountError(f"at most {exponent} decimal places")
    minor = int(whole) * 10**exponent + int((frac + "0" * exponent)[:exponent] or "0")
    return check_minor(-minor if sign == "-" else minor)


def minor_of_decimal(value: Decimal, exponent: int = 2) -> int:
    """A Decimal (from JSON) -> minor units, refusing NaN, infinities, exponents that
    would overflow and amounts over the bound before any arithmetic on them."""
    if not value.is_finite():
        raise AmountError("a finite decimal amount")
    if value and value.adjusted() > 15:  # 10^16 and up: over any bound, cheap to tell
        raise AmountError(f"at most {MAX_AMOUNT_MINOR} minor units")
    try:
        scaled = value.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise AmountError(f"at most {exponent} decimal places")
    except ArithmeticError:  # decimal's Overflow and InvalidOperation
        raise AmountError("a decimal amount") from None
    return check_minor(int(scaled))


def check_minor(minor: int) -> int:
    if not -MAX_AMOUNT_MINOR <= minor <= MAX_AMOUNT_MINOR:
        raise AmountError(f"at most {MAX_AMOUNT_MINOR} minor units in absolute value")
    return minor
