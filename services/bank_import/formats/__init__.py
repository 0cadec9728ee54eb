"""Bank statement importers: one file in, ``payments.received`` movements out.

``parse_statement(data, name, fmt, opts)`` detects the format when not given, validates
the whole file (every field, and the file's own totals where its format carries them)
and returns every movement, or raises ``StatementRejected`` naming each broken place.
``read_statement`` also returns the notes on what is imported all the same (a payer's
account whose check digits fail). Pure: no I/O besides reading a CSV mapping file named
in the options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.accounts import account_problem
from schemas.events import PaymentReceived
from services.bank_import.formats import camt053, csv_mapped, fio_json, gpc, mt940
from services.bank_import.formats.base import (
    Collector,
    ImportOptions,
    Problem,
    StatementRejected,
)
from services.runtime import collector

Format = Literal["gpc", "camt053", "mt940", "fio-json", "csv"]
FORMATS: tuple[Format, ...] = ("gpc", "camt053", "mt940", "fio-json", "csv")

__all__ = [
    "FORMATS",
    "Format",
    "ImportOptions",
    "Statement",
    "StatementRejected",
    "detect",
    "parse_statement",
    "read_statement",
]


@dataclass(frozen=True)
class Statement:
    movements: list[PaymentReceived]
    notes: list[str]  # "file:line: field: ..." for each thing imported but worth a look
    # our accounts it is a statement of, an empty one's too (those that pass their check
    # digits: an account that fails them has no movement either, the file is refused)
    accounts: list[str] = field(default_factory=list)


def detect(data: bytes, name: str) -> Format:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<") and camt053.looks_like(data):
        return "camt053"
    if head.startswith(b"{") and fio_json.looks_like(data):
        return "fio-json"
    if head.startswith((b"074", b"075")):
        return "gpc"
    if mt940.looks_like(data[:4096].decode("latin-1")):
        return "mt940"
    if name.lower().endswith(".csv"):
        return "csv"
    raise StatementRejected(
        name,
        [
            Problem(
                1,
                "format",
                "GPC (074...), camt.053 XML, MT940 (:20:), Fio JSON or a .csv "
                "file; pass --format to say which",
                data[:20].decode("latin-1"),
            )
        ],
    )


def parse_statement(
    data: bytes,
    name: str,
    fmt: Format | None = None,
    opts: ImportOptions | None = None,
    encoding: str | None = None,
) -> list[PaymentReceived]:
    return read_statement(data, name, fmt, opts, encoding).movements


def read_statement(
    data: bytes,
    name: str,
    fmt: Format | None = None,
    opts: ImportOptions | None = None,
    encoding: str | None = None,
) -> Statement:
    opts = opts or ImportOptions()
    if opts.account is not None and (problem := account_problem(opts.account)) is not None:
        raise StatementRejected(name, [Problem(None, "--account", problem, opts.account)])
    fmt = fmt or detect(data, name)
    with collector.paused():  # the movements pile up (a third of a large file's parse)
        parsed = _parse(data, name, fmt, opts, encoding)
        movements = parsed.result()
        parsed.flag_accounts()
    accounts = parsed.accounts | {m.account for m in movements}
    return Statement(
        movements,
        [note.render(name) for note in parsed.notes],
        sorted(a for a in accounts if account_problem(a) is None),
    )


def _parse(
    data: bytes, name: str, fmt: Format, opts: ImportOptions, encoding: str | None
) -> Collector:
    parsed: Collector
    if fmt == "gpc":
        parsed = gpc.parse(data, name, opts)
    elif fmt == "camt053":
        parsed = camt053.parse(data, name, opts)
    elif fmt == "mt940":
        parsed = mt940.parse(data, name, opts, encoding)
    elif fmt == "fio-json":
        parsed = fio_json.parse(data, name, opts)
    elif fmt == "csv":
        parsed = csv_mapped.parse(data, name, opts)
    else:
        raise StatementRejected(name, [Problem(None, "--format", "|".join(FORMATS), fmt)])
    return parsed
