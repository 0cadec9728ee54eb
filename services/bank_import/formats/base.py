"""What every statement importer shares: the error type, symbol and money rules, and the
stable movement id for formats whose banks give none.

An importer is a pure function: the bytes of one statement file in, a list of
``PaymentReceived`` (the external contract of ``payments.received``) out, or a
``StatementRejected`` listing every broken place (file, line, field, what was expected).
Nothing is published from a file that has any error.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from schemas.accounts import account_problem
from schemas.events import PaymentReceived
from schemas.money import AmountError, minor_of_decimal, parse_minor

Country = Literal["CZ", "SK", "HU"]
_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_ERRORS = 50

# ISO 4217 minor-unit exponents of the currencies our customers' banks use.
EXPONENT = {"CZK": 2, "EUR": 2, "HUF": 2, "USD": 2, "GBP": 2, "PLN": 2, "CHF": 2, "JPY": 0}
# ISO 4217 numeric codes, as GPC writes them at positions 119-122.
NUMERIC_CURRENCY = {
    "0203": "CZK",
    "0978": "EUR",
    "0348": "HUF",
    "0840": "USD",
    "0826": "GBP",
    "0985": "PLN",
    "0756": "CHF",
}


@dataclass(frozen=True)
class Problem:
    line: int | None
    field: str
    expected: str
    got: str | None = None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line is not None else file
        got = "" if self.got is None else f", got {self.got!r}"
        return f"{where}: {self.field}: expected {self.expected}{got}"


class StatementRejected(ValueError):
    """The whole file is refused; ``problems`` says where and why."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        lines = [p.render(file) for p in problems[:MAX_ERRORS]]
        if len(problems) > MAX_ERRORS:
            lines.append(f"... and {len(problems) - MAX_ERRORS} more")
        super().__init__(
            f"{file}: statement rejected, nothing imported ({len(problems)} problem(s)):\n  "
            + "\n  ".join(lines)
        )


class Bad(Exception):
    """Raised inside a parser for one field; collected into ``StatementRejected``."""

    def __init__(self, field: str, expected: str, got: str | None = None) -> None:
        super().__init__(field, expected, got)
        self.field = field
        self.expected = expected
        self.got = got


@dataclass
class ImportOptions:
    account: str | None = None  # our account, overrides what the file says
    currency: str | None = None  # default currency where the file names none (GPC)
    country: Country | None = None  # symbol conventions; else from IBAN / BIC / currency
    gpc_variant: Literal["kb", "cs"] = "kb"  # posting codes 4/5, see gpc.py
    csv_mapping: str | None = None  # path of the column-mapping file (CSV only)


@dataclass
class Collector:
    """Gathers movements and problems while a parser walks a file."""

    file: str
    movements: list[PaymentReceived] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # what is imported all the same but an operator should know (see ``flag_accounts``)
    notes: list[Problem] = field(default_factory=list)
    lines: list[int | None] = field(default_factory=list)  # of each movement, in order
    # our accounts the file is a statement of, movements or none (an empty statement is
    # an import too: billing_bank_statement_last_import_timestamp_seconds)
    accounts: set[str] = field(default_factory=set)

    def problem(self, line: int | None, bad: Bad) -> None:
        self.problems.append(Problem(line, bad.field, bad.expected, bad.got))

    def add_checked(self, line: int | None, data: dict[str, Any]) -> None:
        """A movement whose every field the parser's fast path has checked (digits, lengths,
        known currency): skip pydantic's per-field validation (a third of the time)."""
        if data["account"] and _CURRENCY.fullmatch(str(data["currency"])):
            self.movements.append(construct_checked(data))
            self.lines.append(line)
        else:
            self.add(line, **data)

    def add(self, line: int | None, **data: Any) -> None:
        try:
            self.movements.append(PaymentReceived(**data))
            self.lines.append(line)
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ").removeprefix("expected ")
                self.problems.append(Problem(line, loc, msg, repr(err.get("input"))[:80]))

    def result(self) -> list[PaymentReceived]:
        if self.problems:
            raise StatementRejected(self.file, self.problems)
        seen: set[tuple[str, str]] = set()
        for m in self.movements:
            k = (m.account, m.bank_tx_id)
            if k in seen:
                raise StatementRejected(
                    self.file,
                    [Problem(None, "bank_tx_id", "unique per account", f"{m.bank_tx_id} twice")],
                )
            seen.add(k)
        return self.movements

    def flag_accounts(self) -> None:
        """A counterparty account that fails its check digits is kept as the bank printed
        it (the money came all the same: the movement is imported) and noted."""
        checked: dict[str, str | None] = {}
        for m, line in zip(self.movements, self.lines, strict=True):
            acc = m.counterparty_account
            if acc is None:
                continue
            if acc not in checked:
                checked[acc] = account_problem(acc)
            problem = checked[acc]
            if problem is not None:
                self.notes.append(Problem(line, "counterparty_account", problem, acc))


_ALL_FIELDS = frozenset(PaymentReceived.model_fields)


def construct_checked(data: dict[str, Any]) -> PaymentReceived:
    """What ``PaymentReceived.model_construct(**data)`` builds, for a dict holding every
    field already checked, at a sixth of its cost (it is a third of a GPC line's parse).
    ``test_importers`` holds the result equal to the validated model."""
    if len(data) != len(_ALL_FIELDS) or not _ALL_FIELDS.issuperset(data):
        return PaymentReceived.model_construct(**data)
    m = PaymentReceived.__new__(PaymentReceived)
    object.__setattr__(m, "__dict__", data)
    object.__setattr__(m, "__pydantic_fields_set__", set(_ALL_FIELDS))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


# --- symbols ------------------------------------------------------------------------------


def symbol(raw: str | None, name: str, strict: bool = True) -> str | None:
    """A VS or SS: digits, leading zeros dropped, all zeros or empty meaning none.

    ``strict`` (fixed-width formats): anything but digits is an error. Free-text sources
    (camt references, MT940 narratives) pass ``strict=False``: non-digits mean no symbol."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        if strict:
            raise Bad(name, "digits", raw)
        return None
    text = text.lstrip("0")
    if not text:
        return None
    if len(text) > 10:
        if strict:
            raise Bad(name, "at most 10 digits", raw)
        return None
    return text


def constant_symbol(raw: str | None, strict: bool = True) -> str | None:
    """KS: 4 digits (zero-padded); 0000 or empty means none."""
    if raw is None:
        return None
    text = raw.strip()
    if not text or set(text) == {"0"}:
        return None
    if not (text.isascii() and text.isdigit()):
        if strict:
            raise Bad("ks", "digits", raw)
        return None
    text = text.lstrip("0").rjust(4, "0")
    if len(text) > 4:
        if strict:
            raise Bad("ks", "at most 4 significant digits", raw)
        return None
    return text


# Czech / Slovak symbol notations found in free text: "VS:123", "VS 123", "/VS123/SS45/KS0308".
_SYM_RE = {
    name: re.compile(rf"(?:^|[^A-Z0-9]){name}[\s:./=-]*([0-9]{{1,10}})(?![0-9])", re.I)
    for name in ("VS", "SS", "KS")
}


def symbols_in_text(text: str | None) -> dict[str, str | None]:
    found: dict[str, str | None] = {"vs": None, "ss": None, "ks": None}
    if not text:
        return found
    for name, rx in _SYM_RE.items():
        m = rx.search(text)
        if m:
            key = name.lower()
            found[key] = (
                constant_symbol(m.group(1), False)
                if key == "ks"
                else symbol(m.group(1), key, strict=False)
            )
    return found


# --- money and dates -----------------------------------------------------------------------


def minor_units(amount: Decimal | str, currency: str, name: str = "amount") -> int:
    """Exact conversion of a decimal amount to integer minor units; never via float, never
    beyond ``schemas.money.MAX_AMOUNT_MINOR``. A text is plain ASCII digits with one
    decimal point or comma and an optional sign: no exponent, "_" or full-width digits."""
    exp = EXPONENT.get(currency, 2)
    try:
        if isinstance(amount, Decimal):
            return minor_of_decimal(amount, exp)
        return parse_minor(amount.replace(",", ".", 1), exp)
    except AmountError as e:
        raise Bad(name, f"{e.expected} for {currency}", str(amount)[:40]) from None


def money(minor: int, currency: str) -> str:
    """Minor units as a person reads them: 101490, "EUR" -> "1014.90 EUR"."""
    exp = EXPONENT.get(currency, 2)
    sign, digits = ("-" if minor < 0 else ""), str(abs(minor)).rjust(exp + 1, "0")
    whole, frac = (digits[:-exp], digits[-exp:]) if exp else (digits, "")
    return f"{sign}{whole}{'.' if exp else ''}{frac} {currency}"


def reconcile(
    opening: int, amounts: list[int], closing: int, currency: str
) -> tuple[str, str] | None:
    """Does the statement add up: opening balance + its movements = closing balance? Else
    (expected, found) naming the figures, for a ``Bad`` on the closing balance."""
    credits = sum(a for a in amounts if a > 0)
    debits = -sum(a for a in amounts if a < 0)
    found = opening + credits - debits
    if found == closing:
        return None
    n_cr, n_dr = sum(1 for a in amounts if a > 0), sum(1 for a in amounts if a < 0)
    return (
        f"{money(closing, currency)} as the bank wrote it",
        f"{money(found, currency)} = opening {money(opening, currency)} + {n_cr} credit(s) "
        f"{money(credits, currency)} - {n_dr} debit(s) {money(debits, currency)}",
    )


def ddmmyy(raw: str, name: str) -> date:
    if len(raw) != 6 or not (raw.isascii() and raw.isdigit()):
        raise Bad(name, "a date DDMMYY", raw)
    try:
        return date(2000 + int(raw[4:6]), int(raw[2:4]), int(raw[0:2]))
    except ValueError:
        raise Bad(name, "a date DDMMYY", raw) from None


def iso_date(raw: str | None, name: str) -> date:
    if not raw:
        raise Bad(name, "a date", raw)
    try:
        return date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise Bad(name, "an ISO date YYYY-MM-DD", raw) from None


def country_of(iban_or_bic: str | None, currency: str | None) -> Country:
    """Which national symbol convention applies to an account."""
    if iban_or_bic:
        text = iban_or_bic.strip().upper()
        if len(text) in (8, 11) and text[:6].isalpha():  # a BIC: country at 5-6
            cc = text[4:6]
        else:
            cc = text[:2]
        if cc in ("CZ", "SK", "HU"):
            return cc  # type: ignore[return-value]
    return {"EUR": "SK", "HUF": "HU"}.get(currency or "", "CZ")  # type: ignore[return-value]


class StableIds:
    """Movement ids for formats without a bank id (MT940 narratives, some CSV exports).

    The id is a digest of what the bank printed about the movement plus its occurrence
    among identical movements of the same statement, so re-importing the file, or an
    overlapping statement with the same day, gives the same ids."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def make(self, *parts: object) -> str:
        digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
        self.seen[digest] += 1
        return f"h{digest}-{self.seen[digest]}"
