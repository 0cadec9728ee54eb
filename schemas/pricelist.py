"""The operator's VoIP price list (``BILLING_VOIP_PRICE_LIST``) and rating a call from it.
Pure: a file's text in, a ``PriceList`` out (or ``PriceListError`` naming every bad line),
then a number, a day and a duration in, a ``Quote`` out. It lives with the event contracts,
like ``coupons.py``, because two services read the same list: voip rates imported calls
with it, the customer zone may answer "what will this call cost" without importing voip.

The file is CSV with this header (docs/usage.md#price-list)::

    prefix,destination,currency,price_per_minute,increments,setup_fee,valid_from,valid_to
    420,Czech Republic,CZK,0.90,60/60,0,2026-01-01,
    4206,Czech Republic mobile,CZK,1.50,1/1,0.50,2026-01-01,2026-06-30

- ``prefix``: digits of the international number without ``+`` or ``00``.
- ``price_per_minute`` and ``setup_fee``: decimals in whole units of ``currency``.
- ``increments``: ``first/next`` seconds: ``60/60`` per started minute, ``1/1`` per second,
  ``60/1`` a first minute then per second.
- ``valid_from`` / ``valid_to``: the first and the last day (inclusive) the row applies;
  ``valid_to`` empty: open-ended. Rows of one prefix must not overlap in time.

Rating: the longest prefix with a row valid on the call's day (a longer prefix whose row
has expired does not hide a shorter valid one); billed seconds are the first increment,
then whole next increments; price = setup fee + billed seconds x price per minute / 60,
rounded half up to minor units once per call (not per increment).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

HEADER = (
    "prefix",
    "destination",
    "currency",
    "price_per_minute",
    "increments",
    "setup_fee",
    "valid_from",
    "valid_to",
)
# ISO 4217 minor-unit exponents of the currencies we bill in.
EXPONENT = {"CZK": 2, "EUR": 2, "HUF": 2, "USD": 2, "GBP": 2, "PLN": 2, "CHF": 2, "JPY": 0}
MAX_NUMBER_DIGITS = 15  # E.164
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?", re.ASCII)
_INCREMENTS = re.compile(r"([0-9]{1,4})/([0-9]{1,4})", re.ASCII)
_SEPARATORS = str.maketrans("", "", " -./()")


class PriceListError(ValueError):
    """The file is refused whole; the message lists each bad line (file:line: field)."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        shown = problems[:50] + (
            [f"... and {len(problems) - 50} more"] if len(problems) > 50 else []
        )
        super().__init__(f"price list {file} refused:\n  " + "\n  ".join(shown))


class NumberError(ValueError):
    """A number that is not a dialable phone number; the message says what was expected."""


class NoPrice(LookupError):
    """No row of the price list prices this number on this day."""


@dataclass(frozen=True)
class Rate:
    line: int
    prefix: str
    destination: str
    currency: str
    per_minute: Decimal
    first: int  # seconds billed at least
    next: int  # then in steps of
    setup: Decimal
    valid_from: date
    valid_to: date | None  # inclusive; None: open-ended

    @property
    def increments(self) -> str:
        return f"{self.first}/{self.next}"

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def billed_seconds(self, seconds: int) -> int:
        if seconds <= 0:
            return 0
        if seconds <= self.first:
            return self.first
        return self.first + math.ceil((seconds - self.first) / self.next) * self.next

    def price_minor(self, seconds: int) -> int:
        """Setup fee plus the billed seconds, rounded half up once: 0 s costs nothing."""
        if seconds <= 0:
            return 0
        exact = self.setup + self.per_minute * self.billed_seconds(seconds) / 60
        exponent = EXPONENT.get(self.currency, 2)
        return int((exact * 10**exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Quote:
    number: str  # normalised, international digits
    rate: Rate
    seconds: int
    price_minor: int


def normalise(number: str, country_prefix: str) -> str:
    """International digits of a dialled number: ``+420 601 123 456``, ``00420601123456``
    and the national ``601123456`` (with ``country_prefix`` 420) are all ``420601123456``.
    A national number's trunk ``0`` (``0601...``) is dropped before the country prefix."""
    text = number.strip().translate(_SEPARATORS)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    else:
        digits = country_prefix + text.removeprefix("0")
    if not _DIGITS.fullmatch(digits) or text in ("", "+", "00"):
        raise NumberError(f"{number!r}: expected a phone number (digits, + or 00 first)")
    if len(digits) > MAX_NUMBER_DIGITS:
        raise NumberError(f"{number!r}: expected at most {MAX_NUMBER_DIGITS} digits")
    return digits


class PriceList:
    def __init__(self, rates: list[Rate], file: str = "price list") -> None:
        self.file = file
        self.rates = rates
        self.by_prefix: dict[str, list[Rate]] = {}
        for r in rates:
            self.by_prefix.setdefault(r.prefix, []).append(r)
        self.longest = max((len(p) for p in self.by_prefix), default=0)

    def rate(self, digits: str, day: date) -> Rate:
        """The longest prefix of ``digits`` with a row valid on ``day``."""
        for n in range(min(len(digits), self.longest), 0, -1):
            for r in self.by_prefix.get(digits[:n], ()):
                if r.valid_on(day):
                    return r
        raise NoPrice(f"no price for {digits} on {day.isoformat()} in {self.file}")

    def quote(self, number: str, day: date, seconds: int, country_prefix: str) -> Quote:
        """Raises ``NumberError`` (not a number) or ``NoPrice``."""
        digits = normalise(number, country_prefix)
        rate = self.rate(digits, day)
        return Quote(digits, rate, seconds, rate.price_minor(seconds))


def _decimal(raw: str, field: str) -> Decimal:
    if not _DECIMAL.fullmatch(raw):
        raise ValueError(
            f"{field}: expected a decimal like 0.90 (dot, at most 6 places), got {raw!r}"
        )
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{field}: expected a decimal, got {raw!r}") from None


def _day(raw: str, field: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{field}: expected a date YYYY-MM-DD, got {raw!r}") from None


def _row(line: int, row: dict[str, str]) -> Rate:
    prefix = row["prefix"].strip().removeprefix("+")
    if not _DIGITS.fullmatch(prefix) or len(prefix) > MAX_NUMBER_DIGITS:
        raise ValueError(f"prefix: expected international digits (420, 4206), got {prefix!r}")
    destination = row["destination"].strip()
    if not destination:
        raise ValueError("destination: expected a name, got nothing")
    currency = row["currency"].strip()
    if currency not in EXPONENT:
        raise ValueError(f"currency: expected one of {', '.join(EXPONENT)}, got {currency!r}")
    increments = _INCREMENTS.fullmatch(row["increments"].strip())
    if increments is None or 0 in (int(increments.group(1)), int(increments.group(2))):
        raise ValueError(
            "increments: expected first/next seconds above 0 (60/60, 1/1, 60/1),"
            f" got {row['increments']!r}"
        )
    valid_from = _day(row["valid_from"].strip(), "valid_from")
    valid_to = _day(row["valid_to"].strip(), "valid_to") if row["valid_to"].strip() else None
    if valid_to is not None and valid_to < valid_from:
        raise ValueError(
            f"valid_to: expected a day on or after valid_from {valid_from}, got {valid_to}"
        )
    return Rate(
        line=line,
        prefix=prefix,
        destination=destination,
        currency=currency,
        per_minute=_decimal(row["price_per_minute"].strip(), "price_per_minute"),
        first=int(increments.group(1)),
        next=int(increments.group(2)),
        setup=_decimal(row["setup_fee"].strip() or "0", "setup_fee"),
        valid_from=valid_from,
        valid_to=valid_to,
    )


def _overlaps(a: Rate, b: Rate) -> bool:
    a_end, b_end = a.valid_to or date.max, b.valid_to or date.max
    return a.valid_from <= b_end and b.valid_from <= a_end


def parse(text: str, file: str = "price list") -> PriceList:
    """The price list in ``text`` or ``PriceListError`` naming every bad line."""
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise PriceListError(file, [f"{file}:1: header: expected {','.join(HEADER)}, got {header}"])
    rates: list[Rate] = []
    for line, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if len(cells) != len(HEADER):
            problems.append(f"{file}:{line}: expected {len(HEADER)} columns, got {len(cells)}")
            continue
        try:
            rates.append(_row(line, dict(zip(HEADER, cells, strict=True))))
        except ValueError as e:
            problems.append(f"{file}:{line}: {e}")
    by_prefix: dict[str, list[Rate]] = {}
    for r in rates:
        for other in by_prefix.get(r.prefix, ()):
            if _overlaps(r, other):
                problems.append(
                    f"{file}:{r.line}: valid_from/valid_to: prefix {r.prefix} overlaps line"
                    f" {other.line} ({other.valid_from}..{other.valid_to or 'open'})"
                )
        by_prefix.setdefault(r.prefix, []).append(r)
    if problems:
        raise PriceListError(file, problems)
    if not rates:
        raise PriceListError(file, [f"{file}: expected at least one price row, got none"])
    return PriceList(rates, file)


def load(path: str) -> PriceList:
    """The price list file at ``path`` (UTF-8), or ``PriceListError``/``OSError`` naming it."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), path)
