"""Run one service as a Faust worker: a batch source reading its topics (aiokafka, one
consumer-group member), the outbox relay, durable timers and an HTTP server for
``/metrics`` (and the service's own pages). Faust runs the tasks and the process; its own
Kafka consumer and producer are off (``services.runtime.source`` says why).

A service describes itself with a `ServiceSpec`; this module does the plumbing so that each
``services/<name>/worker.py`` stays a thin list of handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic

import asyncpg
import faust
import faust.app.base
from aiohttp import web
from pydantic import BaseModel
from typing_extensions import TypeVar

from schemas.registry import ROUTES
from services.runtime import auth, collector, db, errors, health, logs, metrics
from services.runtime.clock import CLOCK_CHANNEL, Clock, make_clock
from services.runtime.consumer import BatchConsumer, run_inbox_pruner
from services.runtime.outbox import OutboxRelay, make_producer
from services.runtime.runs import Handler
from services.runtime.settings import Settings, Topics, get_settings, get_topics
from services.runtime.source import BatchSource
from services.runtime.timers import BatchTimerHandler, TimerHandler, TimerLoop

log = logs.get(__name__)

# A service's settings class: the runtime's ``Settings`` or the service's subclass of it.
# A bare ``Runtime`` (a worker module's glue) leaves it open; code reading a service's own
# settings names the class: ``Runtime[ProvisioningSettings]``.
S = TypeVar("S", bound=Settings, default=Any)


@dataclass
class Runtime(Generic[S]):
    """What a running service's handlers and pages may use."""

    service: str
    settings: S
    topics: Topics
    clock: Clock
    pool: asyncpg.Pool | None = None
    timer_loop: TimerLoop | None = None
    default_metrics_port: int = 0

    @property
    def metrics_port(self) -> int:
        return self.settings.metrics_port or self.default_metrics_port

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "runtime not started"
        return self.pool


@dataclass
class ServiceSpec(Generic[S]):
    name: str
    # where /metrics, /healthz, /readyz and the operator routes listen unless
    # BILLING_METRICS_PORT says
    metrics_port: int
    # the service's settings (services/<name>/settings.py), read from the environment at start
    settings: type[S]
    # event model -> its handler; the service reads the topics these models travel on
    subscriptions: Callable[[Runtime[S]], dict[type[BaseModel], Handler]]
    # models whose handlers are idempotent by the event's own key (an upsert on the
    # invoice number): applied without an inbox row each (docs/decisions.md#departures)
    keyed: frozenset[type[BaseModel]] = frozenset()
    timer: Callable[[Runtime[S]], TimerHandler] | None = None
    # all due keys of a sweep at once; ``timer`` stays the one-by-one fallback
    timer_batch: Callable[[Runtime[S]], BatchTimerHandler] | None = None
    # operator endpoints on the metrics port: each needs an operator token (runtime/auth.py)
    routes: Callable[[Runtime[S], web.Application], None] | None = None
    background: list[Callable[[Runtime[S]], Awaitable[None]]] = field(default_factory=list)
    extra_servers: list[Callable[[Runtime[S]], Awaitable[web.AppRunner]]] = field(
        default_factory=list
    )
    # settings the service cannot start without (each raises auth.ConfigError, one line)
    startup_checks: list[Callable[[S], object]] = field(default_factory=list)
    # a query of the service's counting work it does on its own and has due at $1 (notify's
    # deliveries), besides its outbox and timers: the dev stack's quiescence waits for 0
    pending: str | None = None
    # sets the service's gauges counted from its own tables (metrics.py), every
    # ``gauge_interval`` seconds: one query a refresh, never a count per event
    gauges: Callable[[Runtime[S], asyncpg.Connection], Awaitable[None]] | None = None


def check_startup(spec: ServiceSpec[S], settings: S) -> auth.OperatorGuard | None:
    """Refuse to start, naming the setting, where the service would run without what
    protects it: operator tokens for its operator endpoints, its own checks; and where it
    would run on a test clock in production."""
    auth.refuse_test_clock_in_production(settings)
    guard = auth.guard(settings) if spec.routes is not None else None
    for check in spec.startup_checks:
        check(settings)
    return guard


class _NoKafka(faust.app.base.BootStrategy):
    """Faust runs the worker (its tasks, signals, shutdown); Kafka is read and written by
    ``BatchSource`` and the outbox relay themselves, so Faust's own consumer and producer
    are not started (they would join the same group with nothing to read)."""

    enable_kafka = False


class _App(faust.App):
    BootStrategy = _NoKafka


def faust_app(app_id: str, state_dir: Path) -> faust.App:
    """Faust's app; its data directory (made at start) goes under ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return _App(
        app_id,
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(state_dir / f"{app_id}-data"),
    )


def build(spec: ServiceSpec[S]) -> tuple[faust.App, Runtime[S]]:
    settings = get_settings(spec.settings)
    topics = get_topics()
    guard = check_startup(spec, settings)
    rt = Runtime(
        spec.name, settings, topics, make_clock(settings), default_metrics_port=spec.metrics_port
    )
    app = faust_app(f"{settings.group_prefix}-{spec.name}", settings.state_path())
    handlers = spec.subscriptions(rt)

    @app.task  # type: ignore[untyped-decorator]
    async def start() -> None:
        logs.configure(spec.name, settings.log_level)
        rt.pool = await db.create_pool(settings.database_url, spec.name, max_size=8)
        async with rt.db.acquire() as conn:
            await rt.clock.refresh(conn)
        # Join the group before anything else runs: a timer must not decide on facts
        # whose events wait unread (a payment behind a suspension).
        consumer = BatchConsumer(spec.name, rt.db, rt.clock, handlers, spec.keyed)
        source = BatchSource(
            spec.name, topics_of(handlers, topics), settings, consumer.apply, bulk=topics.bulk()
        )
        await source.start()
        producer = make_producer(settings)
        await producer.start()
        relay = OutboxRelay(
            spec.name, rt.db, producer, settings.outbox_batch, settings.outbox_poll_interval
        )
        tasks: list[Awaitable[Any]] = [
            relay.run(settings.database_url),
            source.run(),
            source.export_lag(settings.gauge_interval),
            run_inbox_pruner(
                rt.db, spec.name, settings.inbox_retention_days, settings.inbox_prune_interval
            ),
        ]
        if spec.timer is not None:
            rt.timer_loop = TimerLoop(
                spec.name,
                rt.db,
                rt.clock,
                spec.timer(rt),
                settings.timer_poll_interval,
                batch_handler=spec.timer_batch(rt) if spec.timer_batch else None,
            )
            tasks.append(rt.timer_loop.run())
        tasks.extend(bg(rt) for bg in spec.background)
        tasks.append(metrics.refresh_gauges(rt, spec.gauges, settings.gauge_interval))
        checks = health.Health(
            {
                "database": health.database(rt.db),
                "kafka": health.kafka(source.consumer),
                "group": health.group(source.consumer),
            },
            settings.health_timeout,
        )
        runners = [await _serve_metrics(rt, spec, guard, checks)]
        runners += [await server(rt) for server in spec.extra_servers]
        listener = await _listen_clock(rt)
        collector.freeze_startup()
        log.info("worker started", metrics_port=rt.metrics_port)
        try:
            await asyncio.gather(*tasks)
        finally:
            for runner in runners:
                await runner.cleanup()
            with contextlib.suppress(Exception):
                await listener.close()
            await producer.stop()

    return app, rt


def topics_of(handlers: dict[type[BaseModel], Handler], topics: Topics) -> list[str]:
    """The topics the handled models travel on (``schemas.registry.ROUTES``), sorted."""
    return sorted({getattr(topics, ROUTES[model][1]) for model in handlers})


def metrics_app(
    rt: Runtime[S],
    spec: ServiceSpec[S],
    guard: auth.OperatorGuard | None,
    checks: health.Health | None = None,
) -> web.Application:
    """/metrics, /healthz and /readyz, open; the service's operator routes behind the guard."""
    webapp = web.Application(middlewares=[guard.middleware] if guard is not None else [])
    metrics.add_routes(webapp)
    webapp.router.add_get("/healthz", health.alive)
    if checks is not None:
        checks.add_routes(webapp)
    if spec.routes is not None:
        assert guard is not None
        spec.routes(rt, webapp)
    return webapp


async def _serve_metrics(
    rt: Runtime[S], spec: ServiceSpec[S], guard: auth.OperatorGuard | None, checks: health.Health
) -> web.AppRunner:
    webapp = metrics_app(rt, spec, guard, checks)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, rt.settings.metrics_host, rt.metrics_port)
    await site.start()
    return runner


async def _listen_clock(rt: Runtime[Any]) -> asyncpg.Connection:
    """Re-read the shared test clock when it moves, and wake the timers at once."""
    conn = await asyncpg.connect(rt.settings.database_url)

    def moved(*_: object) -> None:
        async def refresh() -> None:
            async with rt.db.acquire() as c:
                await rt.clock.refresh(c)
            if rt.timer_loop is not None:
                rt.timer_loop.wakeup.set()

        asyncio.get_running_loop().create_task(refresh())

    await conn.add_listener(CLOCK_CHANNEL, moved)
    return conn


def run(spec: ServiceSpec[Any]) -> None:
    """Entry point of ``python -m services.<name>.worker``: migrate, then run the worker.

    Every line it writes is a JSON log line, from the first: the logs are configured
    before the settings are read (so a refused setting is a line too), and Faust is told
    to keep them (``override_logging=False``: by default its worker installs a coloured
    text handler of its own until our ``start`` task configures them again). A worker
    that cannot start logs why and exits with its code (services/runtime/errors.py): 78 for
    a setting, which systemd does not restart (RestartPreventExitStatus), 69 when
    PostgreSQL does not answer, which it does. What protects the service (operator tokens,
    the notice secret: ``check_startup``) is checked before the database is asked."""
    logs.configure(spec.name, os.environ.get("BILLING_LOG_LEVEL", "info"))
    try:
        settings = get_settings(spec.settings)
        logs.configure(spec.name, settings.log_level)
        check_startup(spec, settings)
        applied = asyncio.run(db.migrate(settings.database_url, spec.name))
        if applied:
            log.info("migrations applied", migrations=applied)
        app, _ = build(spec)
    except Exception as exc:
        code, why = errors.classify(exc)
        log.critical("worker cannot start", error=why, exit_code=code)
        raise SystemExit(code) from None
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    # Its spinner writes a backspace and a show-cursor escape to stdout when the worker is
    # ready, terminal or not, in front of the next JSON line.
    worker.spinner = None
    worker.execute_from_commandline()
