"""Comments and docstrings say why, not benchmark history (issue 28 item 7): a figure's
before and after, or a measurement, lives in docs/performance.md under a finding's anchor
that the code may cite (``docs/performance.md#finding-9``). Migrations keep theirs: an
applied file is the record of why it was made."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_NUMBER = r"\d[\d.,]*(?:-\d[\d.,]*)?"  # 1,008 or 9.1-9.6
_UNIT = r"(?:us|µs|ms|s|payments/s|rows/s)\b"
HISTORY = re.compile(
    rf"{_NUMBER}(?:\s*{_UNIT})?\s*(?:->|→)\s*{_NUMBER}\s*{_UNIT}"  # 9.1 s -> 6.9 s
    rf"|{_NUMBER}\s+against\s+{_NUMBER}\s*{_UNIT}"  # 2.1 against 4.7 us
    r"|\b[Mm]easured\b"
)


def _sources() -> list[Path]:
    files = [p for d in ("services", "schemas") for p in (ROOT / d).rglob("*") if p.is_file()]
    return sorted(p for p in files if p.suffix in (".py", ".sql") and "migrations" not in p.parts)


def history(text: str) -> list[str]:
    return [
        f"{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if HISTORY.search(line)
    ]


def test_the_pattern_finds_what_it_is_for() -> None:
    assert history("run's CPU at 500,000 invoices (9.1-9.6 s -> 6.9-7.2 s). The work")
    assert history("    million a run: 2.1 against 4.7 us each, measured on 50,000).")
    assert history("# a migration): 1,008 -> 1,790 payments/s, PostgreSQL 795 -> 340 us")
    assert not history("    def f(x: int) -> int:  # see docs/performance.md#finding-9")


def test_no_benchmark_history_in_the_code() -> None:
    found = {
        str(p.relative_to(ROOT)): lines
        for p in _sources()
        if (lines := history(p.read_text(encoding="utf-8")))
    }
    assert not found, found
