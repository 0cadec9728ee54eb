"""Mutation fuzzing of every statement format, bounded to about a second a format.

Real statements (../shared/data/statements, where present) and our own fixtures are
mutated the way the issue-27 run found crashes: bytes flipped, cut or repeated, lines
duplicated or dropped, and hostile tokens spliced in (huge exponents and integers, deep
nesting, a BOM, full-width digits, NUL, 200 kB fields). Every outcome must be a parse (of valid
events with bounded amounts) or ``StatementRejected``; any other exception fails the test
with the input that raised it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import PaymentReceived
from schemas.money import MAX_AMOUNT_MINOR
from services.bank_import.formats import ImportOptions, StatementRejected, read_statement

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "statements"

HOSTILE = [
    b"1E+999999",
    b"-1e308",
    b"92233720368547758.07",
    b"9" * 5000,
    b"[" * 3000,
    b"{" * 3000,
    b"<a>" * 500,
    b"\xef\xbb\xbf",
    "１２３".encode(),
    b"1_000",
    b"\x00",
    b"x" * 200_000,
    b'"' + b"y" * 140_000 + b'"',
    b"NaN",
    b"Infinity",
    b"-",
    b",",
    b"\r\n",
    b":61:",
    b":62F:C261116EUR",
    b"<Bal>",
    b"</Ntry>",
    b"?20",
    b"074",
    b"075",
    b"\xff\xfe",
    b"&amp;",
    b'<!DOCTYPE a [<!ENTITY e "x">]>',
]


def _seeds(names: list[str], real: str) -> list[bytes]:
    found = [(FIX / n).read_bytes() for n in names]
    if (REAL / real).is_dir():
        found += [p.read_bytes() for p in sorted((REAL / real).iterdir()) if p.is_file()]
    return found


FORMATS: dict[str, tuple[list[bytes], str, ImportOptions]] = {
    "gpc": (_seeds(["kb.gpc", "airbank.gpc", "broken.gpc"], "gpc"), "x.gpc", ImportOptions()),
    "mt940": (_seeds(["tatra.sta", "cz_regex.sta"], "mt940"), "x.sta", ImportOptions()),
    "camt053": (
        _seeds(["camt053_cz.xml", "camt053_sk.xml", "camt053_hu.xml"], "camt053"),
        "x.xml",
        ImportOptions(),
    ),
    "fio-json": (_seeds([], "fio_json"), "x.json", ImportOptions()),
    "csv": (
        _seeds(["fio.csv"], "__none__"),
        "x.csv",
        ImportOptions(csv_mapping=str(FIX / "fio_mapping.toml")),
    ),
}
if not FORMATS["fio-json"][0]:  # without ../shared: a Fio document of our own
    FORMATS["fio-json"][0].append(
        b'{"accountStatement":{"info":{"accountId":"2000282668","bankId":"2010",'
        b'"currency":"CZK","openingBalance":1.00,"closingBalance":500.00},'
        b'"transactionList":{"transaction":[{"column22":{"value":1},"column0":'
        b'{"value":"2026-11-16+0100"},"column1":{"value":499.00},"column5":{"value":"1001"}}]}}}'
    )


NUMBERS = [
    b"1E+999999",
    b"1e308",
    b"-0.5",
    b"92233720368547758.07",
    b"9" * 5000,
    b"1_000",
    "４９９".encode(),
    b"NaN",
    b"",
]
_NUMBER = re.compile(rb"[0-9][0-9.,]*")


@st.composite
def mutated(draw: Any, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "lines", "number"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "number":  # a number of the file (an amount, a date, an id) made hostile
            found = list(_NUMBER.finditer(data))
            if found:
                m = found[draw(st.integers(0, len(found) - 1))]
                data[m.start() : m.end()] = draw(st.sampled_from(NUMBERS))
        elif op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            token = draw(st.sampled_from(HOSTILE) | st.binary(min_size=1, max_size=16))
            data[at:at] = token
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        else:  # duplicate one line and drop another
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[j])
            del lines[draw(st.integers(0, len(lines) - 1))]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_mutated_statements_parse_or_are_rejected_cleanly(fmt: str) -> None:
    seeds, name, opts = FORMATS[fmt]

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(seeds))
    def one(data: bytes) -> None:
        try:
            statement = read_statement(data, name, fmt, opts)  # type: ignore[arg-type]
        except StatementRejected as e:
            assert str(e).startswith(f"{name}: statement rejected, nothing imported")
            return
        for m in statement.movements:  # a parse is a correct one: a valid, bounded event
            assert abs(m.amount_minor) <= MAX_AMOUNT_MINOR
            assert PaymentReceived.model_validate_json(m.model_dump_json()) == m

    one()
