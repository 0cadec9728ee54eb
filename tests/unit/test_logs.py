"""A line logged while a handler applies an event names the event; other lines do not."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from schemas import events as ev
from schemas.envelope import envelope
from services.runtime import logs
from services.runtime.runs import Run, handle
from services.runtime.unit import Unit


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The workers' log configuration, writing into a buffer."""
    logs.configure("test")
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(out))
    yield out
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_lines_inside_a_handler_carry_the_event(lines: io.StringIO) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    data = ev.NoticeAcknowledged(
        contract="1002", acknowledged_at=now, address="127.0.0.1", user_agent=None
    )
    event = envelope("notice.acknowledged.v1", "/test", "1002", data, now)
    log = logs.get("test")

    async def handler(unit: Unit, run: Run[ev.NoticeAcknowledged]) -> None:
        log.info("inside")

    async def run() -> None:
        unit = Unit(None, now, "/test")  # type: ignore[arg-type]
        await handle(unit, [(handler, event, data)])
        log.info("after")

    asyncio.run(run())
    inside, after = (json.loads(line) for line in lines.getvalue().splitlines())
    assert inside["event"] == "inside" and inside["service"] == "test"
    assert (inside["contract"], inside["event_id"], inside["event_type"]) == (
        "1002", str(event.id), "notice.acknowledged.v1",
    )  # fmt: skip
    assert after["event"] == "after" and "contract" not in after and "event_id" not in after
