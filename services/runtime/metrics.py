"""Prometheus metrics every worker exposes on ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from services.runtime import errors, logs, sql

if TYPE_CHECKING:
    import asyncpg
    from aiohttp import web

    from services.runtime.worker import Runtime

log = logs.get(__name__)
Q = sql.load(__file__)

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
CONSUMER_LAG = Gauge(
    "billing_consumer_lag",
    "Records between the group's committed offset and the partition's high watermark,"
    " per partition this instance holds",
    ["service", "topic", "partition"],
)
UNMATCHED_OLDEST = Gauge(
    "billing_unmatched_payments_oldest_seconds",
    "Age of the oldest credit waiting in the unmatched queue (0 when none waits)",
    ["currency"],
)
UNMATCHED_WAITING = Gauge(
    "billing_unmatched_payments", "Credits waiting in the unmatched queue", ["currency"]
)
UNMATCHED_AMOUNT = Gauge(
    "billing_unmatched_payments_amount",
    "Sum of the credits waiting in the unmatched queue, in major units",
    ["currency"],
)
RECONNECT = Histogram(
    "billing_reconnect_seconds",
    "From a payment's payments.received event to the gear reporting the restore applied",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
OUTBOX_OLDEST = Gauge(
    "billing_outbox_oldest_seconds", "Age of the oldest outbox row not yet published", ["service"]
)
DEAD_LETTERS = Gauge(
    "billing_dead_letters",
    "Records kept in the service's dead_letters table, by the topic they came from",
    ["service", "topic"],
)
CONTRACTS_BY_ACCESS = Gauge(
    "billing_contracts_by_access", "Contracts per access state (provisioning)", ["state"]
)
CONTRACTS_BY_STAGE = Gauge(
    "billing_contracts_by_dunning_stage", "Contracts per dunning stage (dunning)", ["stage"]
)
NOTIFICATIONS_PENDING = Gauge(
    "billing_notifications_pending", "Deliveries waiting to be sent, retries included (notify)"
)
NOTIFICATIONS_PENDING_OLDEST = Gauge(
    "billing_notifications_pending_oldest_seconds",
    "Age of the oldest delivery waiting to be sent (notify)",
)
DOCUMENTS_PENDING = Gauge(
    "billing_documents_pending",
    "Invoices and credit notes issued and not yet delivered, by stage: to_make (no PDF and"
    " ISDOC yet), to_deliver (handed to notify, no e-mail sent yet) (invoicing)",
    ["stage"],
)
DOCUMENTS_PENDING_OLDEST = Gauge(
    "billing_documents_pending_oldest_seconds",
    "Age of the stage's oldest undelivered document: since its issue day (to_make) or since"
    " it was handed to notify (to_deliver) (invoicing)",
    ["stage"],
)
DOCUMENTS_FAILED = Gauge(
    "billing_documents_failed",
    "Documents this invoicing instance could not make (a customer without an address),"
    " skipped until it restarts",
)
STATEMENT_IMPORTED = Gauge(
    "billing_bank_statement_last_import_timestamp_seconds",
    "When the last statement (or Fio fetch) of the account was imported, empty ones too",
    ["account"],
)


Refresh = Callable[["Runtime[Any]", "asyncpg.Connection"], Awaitable[None]]


async def runtime_gauges(rt: Runtime[Any], conn: asyncpg.Connection) -> None:
    """What every worker counts in its own schema: the outbox's oldest row, dead letters."""
    OUTBOX_OLDEST.labels(rt.service).set(await conn.fetchval(Q.outbox_oldest))
    for row in await conn.fetch(Q.dead_letters_by_topic):
        DEAD_LETTERS.labels(rt.service, row["topic"]).set(row["n"])


async def set_counts(
    conn: asyncpg.Connection, query: str, gauge: Gauge, known: Iterable[str]
) -> None:
    """``gauge{label}`` from ``query``'s ``(label, n)`` rows; every ``known`` label is
    exported, 0 when no row has it (a state nobody is in is still a series to graph)."""
    counts = {r["label"]: r["n"] for r in await conn.fetch(query)}
    for label in set(known) | set(counts):
        gauge.labels(label).set(counts.get(label, 0))


async def refresh_gauges(rt: Runtime[Any], refresh: Refresh | None, interval: float) -> None:
    """Run the runtime's and the service's gauge refresh now and every ``interval`` seconds.
    A failed refresh (the database away) keeps the last values and is logged; /readyz
    reports the database."""
    while True:
        try:
            async with rt.db.acquire() as conn:
                await runtime_gauges(rt, conn)
                if refresh is not None:
                    await refresh(rt, conn)
        except Exception as exc:
            log.warning("gauges not refreshed", error=errors.classify(exc)[1])
        await asyncio.sleep(interval)


async def _metrics(_: web.Request) -> web.Response:
    from aiohttp import web  # here: a command that only counts need not load the web server

    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    """``/metrics``; ``/healthz`` and ``/readyz`` beside it are services/runtime/health.py's."""
    app.router.add_get("/metrics", _metrics)
