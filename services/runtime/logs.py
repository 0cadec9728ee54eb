"""structlog JSON logs. Every line carries the service; handlers bind contract and event id."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any

import structlog

# The event a handler is applying: (contract, event id, event type); for a run, its first
# event. Set once per run by ``runs.handle`` (a context variable's set and reset), rendered
# into a line only when one is logged. Binding the three with structlog's contextvars per
# event cost several percent of a consumer's CPU, for lines that are almost never written
# (docs/performance.md#finding-14).
EVENT: ContextVar[tuple[str | None, object, str] | None] = ContextVar("event", default=None)


def _add_event(
    _logger: object, _method: str, line: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    current = EVENT.get()
    if current is not None:
        contract, event_id, event_type = current
        line.setdefault("contract", contract)
        line.setdefault("event_id", str(event_id))
        line.setdefault("event_type", event_type)
    return line


def configure(service: str, level: str = "info") -> None:
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_event,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (faust, aiokafka) log through the standard library: render them as JSON too.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(lvl, logging.WARNING))
    # Python's warnings and an exception nothing caught are lines of the log as well,
    # not text on stderr between the JSON.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    structlog.get_logger("uncaught").critical(
        "uncaught exception", exc_info=(kind, exc, tb), error=f"{kind.__name__}: {exc}"
    )


def get(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


def bound(**values: object) -> AbstractContextManager[None]:
    """Bind values (contract, event id) to every log line inside the ``with`` block."""
    return structlog.contextvars.bound_contextvars(**values)
