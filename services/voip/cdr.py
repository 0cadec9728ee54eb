"""Reading CDR files: the bytes of one file in, its call records out, each line that cannot
be read as a ``Refusal`` naming the line, column and value (kept, never lost: the other
lines import). Pure.

Formats:

- ``asterisk-csv``: Asterisk's cdr_csv ``Master.csv``, no header. Columns 1-16 are
  accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
  answer, end, duration, billsec, disposition, amaflags; then, by cdr.conf's [csv]
  options, uniqueid (``loguniqueid``, on by default), userfield (``loguserfield``) and
  peeraccount, linkedid, sequence (``newcdrcolumns``, Asterisk 12+). A 17th column is the
  uniqueid when it looks like one (``1733390000.42``), else the userfield. Without a
  uniqueid the call's id is a digest of what identifies the call (accountcode, src, dst,
  channel, start, answer), the same in every file that holds it.
- ``csv``: any PBX's CSV export with a header row, read through a column mapping (TOML,
  ``services/voip/mappings/generic.toml`` documents the keys).

Times are the PBX's local time (``BILLING_VOIP_PBX_TZ``) made aware; an hour that
occurs twice (the autumn change) is read as its first occurrence.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

FORMATS = ("asterisk-csv", "csv")
MAPPINGS = Path(__file__).with_name("mappings")
ASTERISK_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
)  # fmt: skip
ANSWERED = "ANSWERED"
_UNIQUEID = re.compile(r"[0-9]+\.[0-9]+", re.ASCII)
_SECONDS = re.compile(r"[0-9]{1,9}", re.ASCII)
# What ``voip.calls_rated.v1`` holds at most (schemas/events.py ``RatedCall``).
MAX_CALL_ID, MAX_NUMBER = 200, 64


class CdrRejected(ValueError):
    """The whole file cannot be read (its encoding, a mapping that does not fit it)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    line: int
    call_id: str
    contract: str
    caller: str
    number: str
    started_at: datetime  # aware
    seconds: int  # billed (answered) seconds


@dataclass(frozen=True, slots=True)
class Refusal:
    line: int
    column: str
    value: str
    problem: str  # what was expected, or why the line is not rated
    call_id: str | None = None  # when known: a later import of the call settles it

    def render(self, file: str) -> str:
        return f"{file}:{self.line}: {self.column}: {self.problem}, got {self.value!r}"


@dataclass
class ParsedCdr:
    calls: list[CallRecord] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # not rated, by disposition
    lines: int = 0


@dataclass(frozen=True)
class CdrMapping:
    """Which column of a CSV export with a header holds which field."""

    path: str
    columns: dict[str, str]
    delimiter: str = ","
    encoding: str = "utf-8"
    time_format: str = "iso"  # or a strptime format
    answered: str = ANSWERED


REQUIRED = ("contract", "number", "start", "seconds")
OPTIONAL = ("call_id", "caller", "disposition")
FILE_KEYS = {"delimiter": str, "encoding": str, "time_format": str, "answered": str}


def load_mapping(path: str) -> CdrMapping:
    """A mapping file, or ``CdrRejected`` naming the key that is wrong."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CdrRejected(f"mapping {path}: {e}") from None
    file = raw.get("file", {})
    columns = raw.get("columns", {})
    for key, value in file.items():
        if key not in FILE_KEYS or not isinstance(value, FILE_KEYS[key]):
            raise CdrRejected(f"mapping {path}: [file] {key}: expected one of {sorted(FILE_KEYS)}")
    for key, value in columns.items():
        if key not in REQUIRED + OPTIONAL or not isinstance(value, str):
            raise CdrRejected(
                f"mapping {path}: [columns] {key}: expected one of {REQUIRED + OPTIONAL}"
                " naming a column header"
            )
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        raise CdrRejected(f"mapping {path}: [columns]: expected {', '.join(missing)}")
    return CdrMapping(path, dict(columns), **file)


def _text(data: bytes, file: str, encoding: str = "utf-8") -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CdrRejected(
            f"{file}:{line}: expected {encoding} text, got bytes {data[e.start : e.end]!r}"
        ) from None
    except LookupError:
        raise CdrRejected(f"{file}: encoding {encoding!r} unknown") from None


class _Bad(Exception):
    def __init__(self, column: str, value: str, problem: str) -> None:
        self.column, self.value, self.problem = column, value, problem


def _time(raw: str, column: str, tz: ZoneInfo, fmt: str = "iso") -> datetime:
    try:
        t = datetime.fromisoformat(raw) if fmt == "iso" else datetime.strptime(raw, fmt)
    except ValueError:
        shown = "YYYY-MM-DD HH:MM:SS" if fmt == "iso" else fmt
        raise _Bad(column, raw, f"expected a time {shown}") from None
    if t.tzinfo is not None:
        return t
    return t.replace(tzinfo=tz)


def _seconds(raw: str, column: str) -> int:
    if not _SECONDS.fullmatch(raw):
        raise _Bad(column, raw, "expected whole seconds (digits)")
    return int(raw)


def _within(value: str, column: str, limit: int) -> str:
    if len(value) > limit:
        raise _Bad(column, value[:80], f"expected at most {limit} characters")
    return value


def digest_id(*parts: str) -> str:
    return "h" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def parse_asterisk(data: bytes, file: str, tz: ZoneInfo) -> ParsedCdr:
    out = ParsedCdr()
    reader = csv.reader(io.StringIO(_text(data, file), newline=""))
    cols = {name: i for i, name in enumerate(ASTERISK_COLUMNS)}

    def col(name: str) -> str:
        return f"{name} (column {cols[name] + 1})"

    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        out.lines += 1
        if len(row) < 16 or len(row) > 21:
            out.refused.append(
                Refusal(line, "columns", str(len(row)), "expected 16 to 21 columns (cdr_csv)")
            )
            continue
        uniqueid = row[16] if len(row) > 16 and _UNIQUEID.fullmatch(row[16]) else ""
        call_id = uniqueid or digest_id(row[0], row[1], row[2], row[5], row[9], row[10])
        disposition = row[14].strip()
        try:
            seconds = _seconds(row[13].strip(), col("billsec"))
            if disposition != ANSWERED or seconds == 0:
                out.skipped[disposition if disposition != ANSWERED else "ANSWERED, 0 s"] += 1
                continue
            contract = row[0].strip()
            if not contract:
                raise _Bad(col("accountcode"), row[0], "expected the contract number")
            number = row[2].strip()
            if not number:
                raise _Bad(col("dst"), row[2], "expected the number called")
            started = _time(row[9].strip(), col("start"), tz)
            _within(number, col("dst"), MAX_NUMBER)
            caller = _within(row[1].strip(), col("src"), MAX_NUMBER)
            _within(call_id, "uniqueid (column 17)", MAX_CALL_ID)
        except _Bad as bad:
            out.refused.append(Refusal(line, bad.column, bad.value, bad.problem, call_id))
            continue
        out.calls.append(CallRecord(line, call_id, contract, caller, number, started, seconds))
    return out


def parse_mapped(data: bytes, file: str, mapping: CdrMapping, tz: ZoneInfo) -> ParsedCdr:
    out = ParsedCdr()
    reader = csv.reader(
        io.StringIO(_text(data, file, mapping.encoding), newline=""), delimiter=mapping.delimiter
    )
    header = [h.strip() for h in next(reader, [])]
    missing = [h for h in mapping.columns.values() if h not in header]
    if missing:
        raise CdrRejected(
            f"{file}:1: header: expected the columns {missing} of mapping {mapping.path},"
            f" got {header}"
        )
    index = {fld: header.index(h) for fld, h in mapping.columns.items()}

    def col(fld: str) -> str:
        return f"{mapping.columns[fld]} ({fld})"

    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        out.lines += 1
        if len(row) != len(header):
            out.refused.append(
                Refusal(line, "columns", str(len(row)), f"expected {len(header)} columns")
            )
            continue

        def get(fld: str, row: list[str] = row) -> str:
            return row[index[fld]].strip() if fld in index else ""

        call_id = get("call_id") or digest_id(
            get("contract"), get("caller"), get("number"), get("start")
        )
        disposition = get("disposition") or mapping.answered
        try:
            seconds = _seconds(get("seconds"), col("seconds"))
            if disposition != mapping.answered or seconds == 0:
                out.skipped[
                    disposition if disposition != mapping.answered else "answered, 0 s"
                ] += 1
                continue
            if not get("contract"):
                raise _Bad(col("contract"), "", "expected the contract number")
            if not get("number"):
                raise _Bad(col("number"), "", "expected the number called")
            started = _time(get("start"), col("start"), tz, mapping.time_format)
            _within(get("number"), col("number"), MAX_NUMBER)
            if "caller" in index:
                _within(get("caller"), col("caller"), MAX_NUMBER)
            if "call_id" in index:
                _within(call_id, col("call_id"), MAX_CALL_ID)
        except _Bad as bad:
            out.refused.append(Refusal(line, bad.column, bad.value, bad.problem, call_id))
            continue
        out.calls.append(
            CallRecord(
                line, call_id, get("contract"), get("caller"), get("number"), started, seconds
            )
        )
    return out


def parse(
    data: bytes, file: str, fmt: str, tz: ZoneInfo, mapping: CdrMapping | None = None
) -> ParsedCdr:
    if fmt == "asterisk-csv":
        return parse_asterisk(data, file, tz)
    if fmt == "csv":
        if mapping is None:
            raise CdrRejected(f"{file}: --format csv needs --mapping FILE (a column mapping)")
        return parse_mapped(data, file, mapping, tz)
    raise CdrRejected(f"{file}: format {fmt!r}: expected one of {', '.join(FORMATS)}")
