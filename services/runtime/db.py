"""asyncpg pools and plain-SQL migrations, one PostgreSQL schema per service."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

from services.runtime import sql
from services.runtime.clock import ensure_clock_schema, make_clock
from services.runtime.errors import Unavailable

if TYPE_CHECKING:
    from services.runtime.settings import Settings

T = TypeVar("T")
Q = sql.load(__file__)

RUNTIME_MIGRATIONS = Path(__file__).with_name("migrations")
SERVICES_DIR = Path(__file__).parent.parent


class Jsonb(str):
    """JSON text already serialised: written to a jsonb parameter or COPY column as is."""


def _jsonb_encode(value: object) -> bytes:
    # jsonb's binary format: version 1, then the text
    if type(value) is Jsonb:
        return b"\x01" + value.encode()
    return b"\x01" + json.dumps(value).encode()


def _jsonb_decode(data: bytes) -> object:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in binary format, so COPY (binary in asyncpg) can write it too
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog",
        format="binary",
    )  # fmt: skip
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _session(schema: str | None) -> dict[str, str]:
    """Settings of every session the services and CLIs open (pools and single connections)."""
    # Plan every statement with its parameters. A pool lives for weeks while its tables
    # grow from nothing to millions of rows, and after five runs PostgreSQL may keep one
    # generic plan until the table is next analyzed: one made while a table was small is a
    # sequential scan filtered by `contract = ANY($1)`, rows times keys comparisons for
    # every batch (docs/performance.md#finding-9).
    settings = {
        "application_name": f"billing-{schema or 'cli'}",
        "plan_cache_mode": "force_custom_plan",
        # The batch lookups probe an index for a few hundred keys; at the default 4.0 the
        # planner preferred a sequential scan of the contracts (docs/performance.md#finding-9).
        # 1.1 is the usual value for data on SSD or in memory, as the services' working
        # sets are.
        "random_page_cost": "1.1",
        # No JIT compilation: it pays off for long analytic queries, and ours are short
        # probes by key. The planner's estimate for dunning's facts of a batch (a subquery
        # per contract) passed jit_above_cost, and it compiled the query for every batch
        # (docs/performance.md#finding-15).
        "jit": "off",
    }
    if schema:
        settings["search_path"] = schema
    return settings


def where(url: str) -> str:
    """The server and database of ``url`` as a message may show them: no password."""
    parts = urlsplit(url)
    host = parts.hostname or ",".join(parse_qs(parts.query).get("host", [])) or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"PostgreSQL at {host}{port}, database {parts.path.lstrip('/') or '(default)'}"


async def reaching(url: str, attempt: Awaitable[T]) -> T:
    """``attempt`` (a connection or pool being made to ``url``), or ``Unavailable`` naming
    the server when nothing answers there: refused, no such socket, a server starting up
    or out of connections, a name that does not resolve, no answer in time. A command says
    so in one line (exit 69); a worker stops and is started again."""
    try:
        return await attempt
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError,
            asyncpg.TooManyConnectionsError) as exc:  # fmt: skip
        raise Unavailable(f"{where(url)} is not reachable: {exc}") from exc


async def create_pool(
    url: str, schema: str | None = None, *, min_size: int = 1, max_size: int = 5
) -> asyncpg.Pool:
    pool = await reaching(
        url,
        asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            server_settings=_session(schema),
            init=_init_connection,
        ),
    )
    assert pool is not None
    return pool


async def connect(url: str, schema: str | None = None) -> asyncpg.Connection:
    conn = await reaching(url, asyncpg.connect(url, server_settings=_session(schema)))
    await _init_connection(conn)
    return conn


@contextlib.asynccontextmanager
async def command_session(
    settings: Settings, schema: str
) -> AsyncIterator[tuple[asyncpg.Connection, datetime]]:
    """A command's connection to ``schema`` and the time it is now (the shared test clock's,
    where on)."""
    conn = await connect(settings.database_url, schema)
    try:
        clock = make_clock(settings)
        await clock.refresh(conn)
        yield conn, clock.now()
    finally:
        await conn.close()


async def try_schema_lock(conn: asyncpg.Connection, name: str) -> bool:
    """Take the transaction-scoped advisory lock ``<schema>.<name>`` if it is free: one
    instance of a service does that work at a time, the others skip the round."""
    return bool(await conn.fetchval(Q.try_schema_lock, name))


def migration_files(service: str) -> list[Path]:
    """Runtime plumbing first, then the service's own files, each set in name order."""
    own = sorted((SERVICES_DIR / service / "migrations").glob("*.sql"))
    return sorted(RUNTIME_MIGRATIONS.glob("*.sql")) + own


async def migrate(url: str, service: str) -> list[str]:
    """Apply the service's pending migrations in order; safe to run from many instances."""
    conn = await reaching(url, asyncpg.connect(url))
    applied: list[str] = []
    try:
        # One instance migrates at a time; the others wait here and then find nothing to do.
        await conn.execute(Q.lock_migrations)
        await ensure_clock_schema(conn)
        # DDL takes no parameters: the schema's name is formatted in, quoted, as the one
        # statement here that must be (the name is a service's folder, never user input)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{service}"')
        await conn.execute(Q.use_schema, service)
        await conn.execute(Q.create_schema_migrations)
        done = {r["name"] for r in await conn.fetch(Q.applied_migrations)}
        for path in migration_files(service):
            name = f"{path.parent.parent.name}/{path.name}"
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute(Q.record_migration, name)
            applied.append(name)
    finally:
        await conn.execute(Q.unlock_migrations)
        await conn.close()
    return applied


def _split(url: str) -> tuple[str, str]:
    """The database name in ``url`` and a URL of the same server's ``postgres`` database
    (works for host:port URLs and for socket URLs like ``postgresql://u@/db?host=/dir``)."""
    parts = urlsplit(url)
    return parts.path.lstrip("/"), urlunsplit(parts._replace(path="/postgres"))


async def drop_database(url: str) -> None:
    """Drop the database named in ``url``, even with sessions still connected."""
    name, admin_url = _split(url)
    conn = await asyncpg.connect(admin_url)
    try:
        # DDL takes no parameters: the database's name (from the URL) is formatted in
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if the server does not have it yet."""
    name, admin_url = _split(url)
    if not name:
        return
    conn = await reaching(admin_url, asyncpg.connect(admin_url))
    try:
        exists = await conn.fetchval(Q.database_exists, name)
        if not exists:  # DDL takes no parameters: the name (from the URL) is formatted in
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
