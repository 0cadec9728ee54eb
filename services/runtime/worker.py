"""Run one service as a Faust worker: agents consume in batches, plus the outbox relay,
durable timers and an HTTP server for ``/metrics`` (and the service's own pages).

A service describes itself with a `ServiceSpec`; this module does the plumbing so that each
``services/<name>/worker.py`` stays a thin list of handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import faust
from aiohttp import web

from services.runtime import db, faust_kafka, logs, metrics
from services.runtime.clock import CLOCK_CHANNEL, Clock, make_clock
from services.runtime.consumer import BatchConsumer, Handler, Record
from services.runtime.outbox import OutboxRelay, make_producer
from services.runtime.settings import Settings, Topics, get_settings, get_topics
from services.runtime.take import take_batches
from services.runtime.timers import BatchTimerHandler, TimerHandler, TimerLoop

log = logs.get(__name__)


@dataclass
class Runtime:
    """What a running service's handlers and pages may use."""

    service: str
    settings: Settings
    topics: Topics
    clock: Clock
    pool: asyncpg.Pool | None = None
    timer_loop: TimerLoop | None = None

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "runtime not started"
        return self.pool


@dataclass
class ServiceSpec:
    name: str
    # topic name -> {event type -> handler}
    subscriptions: Callable[[Runtime], dict[str, dict[str, Handler]]]
    timer: Callable[[Runtime], TimerHandler] | None = None
    # all due keys of a sweep at once; ``timer`` stays the one-by-one fallback
    timer_batch: Callable[[Runtime], BatchTimerHandler] | None = None
    routes: Callable[[Runtime, web.Application], None] | None = None
    background: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)
    extra_servers: list[Callable[[Runtime], Awaitable[web.AppRunner]]] = field(default_factory=list)


def faust_app(app_id: str, settings: Settings) -> faust.App:
    brokers = [f"kafka://{h}" for h in settings.kafka_bootstrap_servers.split(",")]
    faust_kafka.FETCH_MAX_WAIT_MS = settings.fetch_max_wait_ms
    return faust_kafka.App(
        app_id,
        broker=brokers,
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_commit_interval=settings.commit_interval,
        broker_commit_every=settings.batch_size,
        producer_acks=-1,
        stream_buffer_maxsize=max(4096, settings.batch_size * 4),
    )


def build(spec: ServiceSpec) -> tuple[faust.App, Runtime]:
    settings = get_settings()
    topics = get_topics()
    rt = Runtime(spec.name, settings, topics, make_clock(settings))
    app = faust_app(f"billing-{spec.name}", settings)
    ready = asyncio.Event()
    consumers: list[BatchConsumer] = []
    subscriptions = spec.subscriptions(rt)
    handlers: dict[str, Handler] = {}
    for by_type in subscriptions.values():
        handlers.update(by_type)

    @app.task  # type: ignore[untyped-decorator]
    async def start() -> None:
        logs.configure(spec.name, settings.log_level)
        rt.pool = await db.create_pool(settings.database_url, spec.name, max_size=8)
        async with rt.db.acquire() as conn:
            await rt.clock.refresh(conn)
        consumers.append(BatchConsumer(spec.name, rt.db, rt.clock, handlers))
        producer = make_producer(settings.kafka_bootstrap_servers)
        await producer.start()
        relay = OutboxRelay(
            spec.name, rt.db, producer, settings.outbox_batch, settings.outbox_poll_interval
        )
        tasks: list[Awaitable[Any]] = [relay.run(settings.database_url)]
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
        runners = [await _serve_metrics(rt, spec)]
        runners += [await server(rt) for server in spec.extra_servers]
        listener = await _listen_clock(rt)
        ready.set()
        log.info("worker started", metrics_port=settings.metrics_port_for(spec.name))
        try:
            await asyncio.gather(*tasks)
        finally:
            for runner in runners:
                await runner.cleanup()
            with contextlib.suppress(Exception):
                await listener.close()
            await producer.stop()

    _add_agent(app, spec.name, list(subscriptions), settings, ready, consumers)
    return app, rt


def _add_agent(
    app: faust.App,
    service: str,
    topic_names: list[str],
    settings: Settings,
    ready: asyncio.Event,
    consumers: list[BatchConsumer],
) -> None:
    """One agent per service over all its topics, concurrency 1: batches apply strictly one
    after another, so two events of one contract never race in concurrent transactions.
    Faust assigns the same partition number of every topic of an agent to the same worker,
    and every topic is keyed by contract, so one contract's events meet in one instance."""
    topic = app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

    async def consume(stream: faust.StreamT[Any]) -> None:
        await ready.wait()
        consumer = consumers[0]
        # The events of a batch are acknowledged only after this loop body returns, i.e.
        # after our commit: at-least-once (services.runtime.take).
        async for events in take_batches(stream, settings.batch_size, settings.batch_linger):
            records = [
                Record(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.message.key,
                    value=e.message.value,
                    timestamp=e.message.timestamp,
                )
                for e in events
            ]
            await consumer.apply(records)

    consume.__name__ = consume.__qualname__ = f"{service}_consume"
    app.agent(topic, name=f"{service}.consume", concurrency=1)(consume)


async def _serve_metrics(rt: Runtime, spec: ServiceSpec) -> web.AppRunner:
    webapp = web.Application()
    metrics.add_routes(webapp)
    if spec.routes is not None:
        spec.routes(rt, webapp)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, rt.settings.metrics_host, rt.settings.metrics_port_for(rt.service))
    await site.start()
    return runner


async def _listen_clock(rt: Runtime) -> asyncpg.Connection:
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


def run(spec: ServiceSpec) -> None:
    """Entry point of ``python -m services.<name>.worker``: migrate, then run the worker."""
    settings = get_settings()
    logs.configure(spec.name, settings.log_level)
    applied = asyncio.run(db.migrate(settings.database_url, spec.name))
    if applied:
        log.info("migrations applied", migrations=applied)
    app, _ = build(spec)
    worker = faust.Worker(
        app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False
    )
    worker.execute_from_commandline()
