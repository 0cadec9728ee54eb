"""CSV exports, read through a column-mapping file (TOML) that names which column holds
which field. One mapping per bank export layout; ``services/bank_import/mappings/``
ships examples. See ``MAPPING_KEYS`` for what a mapping may say.

    [file]
    encoding = "windows-1250"   # default utf-8
    delimiter = ";"             # default ","
    skip_lines = 0              # lines before the header row
    decimal_comma = true        # "1 234,50"
    date_format = "%d.%m.%Y"    # default ISO
    account = "2000282668/2010" # our account, unless a column holds it
    currency = "CZK"            # unless a column holds it

    [columns]                   # field = "header of the column"
    bank_tx_id = "ID pohybu"
    booked_on = "Datum"
    amount = "Objem"            # signed; or credit = "..." and debit = "..."
    vs = "VS"
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.bank_import.formats.base import (
    Bad,
    Collector,
    ImportOptions,
    StableIds,
    constant_symbol,
    minor_units,
    symbol,
)

FILE_KEYS = {
    "encoding": str,
    "delimiter": str,
    "skip_lines": int,
    "decimal_comma": bool,
    "date_format": str,
    "account": str,
    "currency": str,
}
COLUMN_KEYS = {
    "account",
    "bank_tx_id",
    "booked_on",
    "value_on",
    "amount",
    "credit",
    "debit",
    "currency",
    "vs",
    "ss",
    "ks",
    "counterparty_account",
    "counterparty_bank",
    "counterparty_name",
    "message",
}
MAPPING_KEYS = {"file": FILE_KEYS, "columns": COLUMN_KEYS}


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class Mapping:
    path: str
    columns: dict[str, str]
    encoding: str = "utf-8"
    delimiter: str = ","
    skip_lines: int = 0
    decimal_comma: bool = False
    date_format: str | None = None
    account: str | None = None
    currency: str | None = None


def load_mapping(path: str) -> Mapping:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"{path}: mapping file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise MappingError(f"{path}: not valid TOML: {e}") from None
    for key in raw:
        if key not in MAPPING_KEYS:
            raise MappingError(f"{path}: [{key}]: unknown section; expected [file] or [columns]")
    file_part = raw.get("file", {})
    for key, value in file_part.items():
        if key not in FILE_KEYS:
            raise MappingError(f"{path}: file.{key}: unknown key; known: {sorted(FILE_KEYS)}")
        if not isinstance(value, FILE_KEYS[key]):
            raise MappingError(
                f"{path}: file.{key}: expected {FILE_KEYS[key].__name__}, got {value!r}"
            )
    columns = raw.get("columns", {})
    for key, value in columns.items():
        if key not in COLUMN_KEYS:
            raise MappingError(
                f"{path}: columns.{key}: unknown field; known: {sorted(COLUMN_KEYS)}"
            )
        if not isinstance(value, str) or not value:
            raise MappingError(f"{path}: columns.{key}: expected a column header, got {value!r}")
    if "booked_on" not in columns:
        raise MappingError(f"{path}: columns.booked_on: required (the booking date column)")
    if "amount" not in columns and not {"credit", "debit"} <= columns.keys():
        raise MappingError(f"{path}: columns.amount: required, or both columns.credit and .debit")
    if "currency" not in columns and "currency" not in file_part:
        raise MappingError(f"{path}: file.currency: required when no column holds the currency")
    if len(file_part.get("delimiter", ",")) != 1:
        raise MappingError(f"{path}: file.delimiter: expected one character")
    try:
        "".encode(file_part.get("encoding", "utf-8"))
    except LookupError:
        raise MappingError(f"{path}: file.encoding: unknown encoding") from None
    return Mapping(path=path, columns=dict(columns), **file_part)


def parse(data: bytes, file: str, opts: ImportOptions) -> Collector:
    out = Collector(file)
    if not opts.csv_mapping:
        out.problem(None, Bad("--mapping", "a column-mapping file for CSV statements", None))
        return out
    m = load_mapping(opts.csv_mapping)
    if opts.account or m.account:
        out.accounts.add(opts.account or m.account or "")
    try:
        text = data.decode(m.encoding)
    except UnicodeDecodeError as e:
        out.problem(None, Bad("encoding", f"text in {m.encoding}", str(e)))
        return out
    text = text.removeprefix("\ufeff")
    lines = io.StringIO(text)
    for _ in range(m.skip_lines):
        lines.readline()
    reader = csv.reader(lines, delimiter=m.delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        out.problem(m.skip_lines + 1, Bad("header", "a header row", "end of file"))
        return out
    except csv.Error as e:  # a field over csv's limit (128 kB), a NUL byte
        out.problem(m.skip_lines + reader.line_num, Bad("header", "a CSV header row", str(e)))
        return out
    index: dict[str, int] = {}
    for fld, col in m.columns.items():
        if col not in header:
            out.problem(m.skip_lines + 1, Bad(f"column {col!r} ({fld})", "in the header", None))
        else:
            index[fld] = header.index(col)
    if out.problems:
        return out
    ids = StableIds()
    for row in _rows(reader, m, out):
        line = m.skip_lines + reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) != len(header):
                raise Bad("row", f"{len(header)} columns", f"{len(row)} columns")
            out.add(line, **_movement(row, index, m, opts, ids))
        except Bad as bad:
            out.problem(line, bad)
    return out


def _rows(reader: Any, m: Mapping, out: Collector) -> Iterator[list[str]]:
    """The rows, until one csv cannot read (the file is rejected there, naming the line)."""
    while True:
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            out.problem(m.skip_lines + reader.line_num, Bad("row", "a CSV row", str(e)))
            return
        yield row


def _amount(raw: str, currency: str, m: Mapping, name: str, signed: bool = True) -> int:
    text = raw.strip().replace("\u00a0", "").replace(" ", "")
    if not signed and text[:1] in ("+", "-"):
        raise Bad(name, "an amount without a sign (the column says credit or debit)", raw)
    if m.decimal_comma:
        text = text.replace(".", "").replace(",", ".")
    if not re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", text, re.ASCII):
        raise Bad(name, "an amount such as " + ("1 234,50" if m.decimal_comma else "1234.50"), raw)
    return minor_units(text, currency, name)


def _date(raw: str, m: Mapping, name: str) -> date:
    try:
        if m.date_format:
            return datetime.strptime(raw.strip(), m.date_format).date()
        return date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise Bad(name, f"a date {m.date_format or 'YYYY-MM-DD'}", raw) from None


def _movement(
    row: list[str], index: dict[str, int], m: Mapping, opts: ImportOptions, ids: StableIds
) -> dict[str, object]:
    def get(fld: str) -> str | None:
        if fld not in index:
            return None
        return row[index[fld]].strip() or None

    def col(fld: str) -> str:
        return f"{m.columns[fld]} ({fld})"

    currency = (get("currency") or m.currency or "").upper()
    if not currency:
        raise Bad(col("currency"), "a currency", None)
    if "amount" in index:
        raw_amount = get("amount")
        if raw_amount is None:
            raise Bad(col("amount"), "an amount", None)
        amount = _amount(raw_amount, currency, m, col("amount"))
    else:
        credit, debit = get("credit"), get("debit")
        if (credit is None) == (debit is None):
            raise Bad(f"{col('credit')}/{col('debit')}", "exactly one of them filled", None)
        amount = (
            _amount(credit, currency, m, col("credit"), signed=False)
            if credit is not None
            else -_amount(debit or "", currency, m, col("debit"), signed=False)
        )
    booked = get("booked_on")
    if booked is None:
        raise Bad(col("booked_on"), "a date", None)
    booked_on = _date(booked, m, col("booked_on"))
    value = get("value_on")
    value_on = _date(value, m, col("value_on")) if value else booked_on
    counter, bank = get("counterparty_account"), get("counterparty_bank")
    if counter and bank and "/" not in counter:
        counter = f"{counter}/{bank}"
    vs = symbol(get("vs"), col("vs") if "vs" in m.columns else "vs")
    ss = symbol(get("ss"), col("ss") if "ss" in m.columns else "ss")
    ks = constant_symbol(get("ks"))
    account = opts.account or get("account") or m.account
    if not account:
        raise Bad("account", "our account: --account, file.account or an account column", None)
    tx_id = get("bank_tx_id") or ids.make(
        "csv", booked_on, amount, currency, vs, ss, ks, counter, get("message")
    )
    return {
        "account": account,
        "bank_tx_id": tx_id,
        "booked_on": booked_on,
        "value_on": value_on,
        "amount_minor": amount,
        "currency": currency,
        "vs": vs,
        "ss": ss,
        "ks": ks,
        "counterparty_account": counter,
        "counterparty_name": get("counterparty_name"),
        "message": get("message"),
    }
