"""What went wrong, as a script can act on it: every error a command (or a worker at start)
reports is one of these, and each maps to an exit code of BSD's sysexits.h.

| code | class | meaning |
|---|---|---|
| 0 | | done |
| 64 | `UsageError` | the command line is wrong (unknown option, missing argument) |
| 65 | `BadInput` | the data is wrong: a statement, a contracts file, an amount, a date |
| 66 | `NotFound` | an input file, a contract, a payment that does not exist |
| 69 | `Unavailable` | PostgreSQL or Kafka did not answer: try later, nothing was half-done |
| 70 | (anything else) | a bug: the message names the error, ``--debug`` shows where |
| 74 | (`OSError`) | reading or writing a file failed (disk full, I/O error) |
| 75 | `TryAgain` | a conflict with another run (a lock, a serialization failure): repeat |
| 78 | `BadConfig` | a setting (``BILLING_*``) or a policy file is wrong |
| 130 | | interrupted (Ctrl-C) |

``classify`` turns any exception into (code, one line); library errors that mean the same
(an ``asyncpg`` connection refused, an ``aiokafka`` connection error, pydantic's refusal of
a value) are mapped here, so raising code needs no wrapper for them.
"""

from __future__ import annotations

import socket
from typing import ClassVar

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78
EX_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


class BillingError(Exception):
    """An error a person can act on: the message says what and where."""

    exit_code: ClassVar[int] = EX_SOFTWARE


class UsageError(BillingError):
    exit_code = EX_USAGE


class BadInput(BillingError, ValueError):
    """Refused data. A ``ValueError`` too, so code that refuses values keeps its ``except``."""

    exit_code = EX_DATAERR


class NotFound(BillingError, LookupError):
    exit_code = EX_NOINPUT


class Unavailable(BillingError):
    """A service the command needs (PostgreSQL, Kafka) did not answer."""

    exit_code = EX_UNAVAILABLE


class TryAgain(BillingError):
    exit_code = EX_TEMPFAIL


class BadConfig(BillingError, ValueError):
    exit_code = EX_CONFIG


# SQLSTATEs: 40001 serialization failure, 40P01 deadlock, 55P03 lock not available,
# 57P03 cannot connect now (starting or shutting down), 53300 too many connections,
# 3D000 no such database, 28000/28P01 login refused.
_PG_TRY_AGAIN = frozenset({"40001", "40P01", "55P03"})
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
_PG_CONFIG = frozenset({"3D000", "28000", "28P01"})


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code for ``exc`` and the line that tells a person what happened."""
    if isinstance(exc, KeyboardInterrupt):
        return EX_INTERRUPTED, "interrupted"
    if isinstance(exc, BillingError):
        return exc.exit_code, one_line(str(exc))
    known = _library_error(exc)
    if known is not None:
        return known
    if isinstance(exc, ValueError):  # a refused value: dates, numbers, enums
        return EX_DATAERR, one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return EX_NOINPUT, one_line(f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return EX_UNAVAILABLE, one_line(f"no answer: {exc}")
    if isinstance(exc, OSError):
        return EX_IOERR, one_line(str(exc))
    return EX_SOFTWARE, one_line(f"internal error: {type(exc).__name__}: {exc}")


def _library_error(exc: BaseException) -> tuple[int, str] | None:
    """Errors of asyncpg, aiokafka and pydantic that mean one of the classes above."""
    import asyncpg
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return EX_DATAERR, validation_line(exc)
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        if state in _PG_TRY_AGAIN:
            return EX_TEMPFAIL, one_line(f"PostgreSQL: {exc} (repeat the command)")
        if state in _PG_UNAVAILABLE:
            return EX_UNAVAILABLE, one_line(f"PostgreSQL is not available: {exc}")
        if state in _PG_CONFIG:
            return EX_CONFIG, one_line(f"PostgreSQL refused BILLING_DATABASE_URL: {exc}")
        return None
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return EX_UNAVAILABLE, one_line(f"PostgreSQL connection lost: {exc}")
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return EX_UNAVAILABLE, one_line(f"Kafka did not answer: {exc}")
    if isinstance(exc, KafkaError):
        return EX_UNAVAILABLE, one_line(f"Kafka: {exc}")
    return None


def validation_line(exc: object) -> str:
    """pydantic's several lines as one: ``field: message; field: message``."""
    errors = exc.errors(include_input=False)  # type: ignore[attr-defined]
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    title = getattr(exc, "title", "value")
    return one_line(f"{title}: {'; '.join(parts)}{more}")


def one_line(text: str) -> str:
    return " ".join(text.split())
