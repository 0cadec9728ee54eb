"""What a command writes for the person or the script that runs it: ``--json`` output, a
progress line while a long command works (only on a terminal), and the one line that says
why a command failed, with its exit code (``services/runtime/errors.py``)."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import IO, NoReturn
from uuid import UUID

from services.runtime import errors


def _plain(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if hasattr(value, "items"):  # asyncpg Record
        return dict(value.items())
    raise TypeError(f"{type(value).__name__} is not JSON")


def print_json(value: object, out: IO[str] | None = None) -> None:
    """``value`` as one JSON document on stdout (dates as ISO 8601, amounts in minor units
    as the events carry them), for ``--json``."""
    json.dump(value, out or sys.stdout, ensure_ascii=False, indent=2, default=_plain)
    (out or sys.stdout).write("\n")


class Progress:
    """How far a long command is: one line on stderr rewritten in place, at most every
    ``interval`` seconds, and left standing at the end. Only when stderr is a terminal: a
    script, a pipe, cron or the journal gets the command's own output alone."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        stream: IO[str] | None = None,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.shown = _is_terminal(self.stream)
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last = float("-inf")
        self.done = 0
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, done: int) -> None:
        """``done`` items so far (not an increment)."""
        self.done = done
        now = self.clock()
        if self.shown and now - self.last >= self.interval:
            self.last = now
            self._draw(now)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def close(self) -> None:
        if self.shown:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        text = f"{self.what}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} ({100 * self.done / self.total:.0f}%)"
        text += f", {self.done / elapsed:,.0f}/s, {elapsed:.0f} s"
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def fail(prog: str, exc: BaseException, debug: bool) -> NoReturn:
    """Exit with ``exc``'s code after one line on stderr naming what went wrong; the
    traceback only with ``--debug``. A bug (70) says how to see where it happened."""
    code, line = errors.classify(exc)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    elif code == errors.EX_SOFTWARE:
        line += " (run again with --debug for the traceback)"
    print(f"{prog}: {line}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` is among the options (anywhere before ``--``), and ``argv``
    without it: ``billing --debug invoices`` and ``billing invoices --debug`` alike."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" not in argv[:end]:
        return False, argv
    return True, [a for i, a in enumerate(argv) if not (i < end and a == "--debug")]


def shown(text: str) -> str:
    """Text as printed on one line: as it is, or quoted with escapes when it holds a
    control character (an address stored before the contact rules)."""
    return text if text.isprintable() else repr(text)
