"""Prometheus metrics every worker exposes on ``/metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from aiohttp import web

EVENTS_IN = Counter(
    "billing_events_in_total", "Events consumed and applied", ["service", "topic", "type"]
)
EVENTS_OUT = Counter("billing_events_out_total", "Events published", ["service", "topic", "type"])
DUPLICATES = Counter(
    "billing_events_duplicate_total",
    "Redelivered events skipped by the inbox",
    ["service", "topic"],
)
DLQ = Counter("billing_dlq_total", "Records sent to a dead-letter topic", ["service", "topic"])
PROCESSING = Histogram(
    "billing_batch_processing_seconds",
    "Time to apply one consumed batch (parse, transaction, commit)",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENT_LAG = Histogram(
    "billing_event_age_seconds",
    "From the event's broker timestamp to its effect committed",
    ["service", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PARTITIONS = Gauge(
    "billing_partitions_assigned",
    "Partitions of the topic this instance holds in its consumer group",
    ["service", "topic"],
)
OUTBOX_BACKLOG = Gauge("billing_outbox_backlog", "Outbox rows not yet published", ["service"])
TRANSIENT_RETRIES = Counter(
    "billing_transient_retries_total", "Batches retried after a transient error", ["service"]
)
TIMERS_FIRED = Counter("billing_timers_fired_total", "Durable timers fired", ["service"])
INBOX_PRUNED = Counter(
    "billing_inbox_pruned_total", "Inbox ids deleted after the retention", ["service"]
)


async def _metrics(_: web.Request) -> web.Response:
    from aiohttp import web  # here: a command that only counts need not load the web server

    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    """``/metrics``; ``/healthz`` beside it is services/runtime/health.py's."""
    app.router.add_get("/metrics", _metrics)
