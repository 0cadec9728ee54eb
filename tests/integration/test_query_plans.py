"""Plans of the batch queries on the real PostgreSQL: what made the bench's PostgreSQL take
795 us of CPU a payment (a cached generic plan made while a table was small; a currency
compared as text, which could not narrow its index)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from services.dunning.service import Q as DQ
from services.payments.service import Q
from services.runtime import db
from services.runtime.outbox import Q as RQ


@contextlib.asynccontextmanager
async def _session(url: str, service: str) -> AsyncIterator[asyncpg.Connection]:
    """The service's schema, and a connection of a pool like its worker's."""
    await db.migrate(url, service)
    pool = await db.create_pool(url, service, max_size=1)
    try:
        async with pool.acquire() as conn:
            yield conn
    finally:
        await pool.close()


async def _explain(conn: asyncpg.Connection, query: str, *args: object) -> str:
    return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + query, *args))


def test_a_plan_made_on_a_small_table_is_not_kept_once_it_has_grown(database_url: str) -> None:
    asyncio.run(_stale_plan(database_url))


async def _stale_plan(url: str) -> None:
    async with _session(url, "payments") as conn:
        await conn.execute(
            "PREPARE of_contracts(text[]) AS"
            " SELECT contract, currency FROM contracts WHERE contract = ANY($1)"
        )
        # small when autovacuum last analyzed it, as in the first minutes of a system
        await conn.execute(
            "INSERT INTO contracts SELECT g::text, 'CZK' FROM generate_series(1, 100) g;"
            " ANALYZE contracts"
        )
        for _ in range(8):  # past the five custom plans after which one may be cached
            await conn.fetch("EXECUTE of_contracts('{1,2}')")
        await conn.execute(
            "INSERT INTO contracts SELECT g::text, 'CZK' FROM generate_series(101, 50000) g"
        )
        # no ANALYZE: autovacuum comes within a minute or two, a batch every few ms
        plan = await _explain(conn, "EXECUTE of_contracts('{17,4242,31337}')")
    assert "Index" in plan and "Seq Scan" not in plan, plan


def test_waiting_reversals_probe_the_index_by_currency_too(database_url: str) -> None:
    asyncio.run(_reversals_plan(database_url))


async def _reversals_plan(url: str) -> None:
    async with _session(url, "payments") as conn:
        # many waiting transactions (the partial index on them is no shortcut), of many
        # accounts and amounts
        await conn.execute(
            "INSERT INTO bank_transactions (account, bank_tx_id, event_id, booked_on,"
            " amount_minor, currency, data, status, received_at)"
            " SELECT 'a' || g % 200, g::text, gen_random_uuid(), '2026-11-20', g % 5000,"
            " 'CZK', '{}', 'unmatched', now() FROM generate_series(1, 20000) g;"
            " ANALYZE bank_transactions"
        )
        plan = await _explain(
            conn, Q.batch_facts, [], [], ["a7", "a9"], ["x", "y"], ["CZK", "CZK"], [-7, -9]
        )
    # the probe for waiting reversals: by account, currency and amount
    cond = [line for line in plan.splitlines() if "Index Cond" in line and "amount_minor" in line]
    assert cond and "currency" in cond[0], plan


def test_unpaid_invoices_of_a_batch_are_probed_whatever_the_statistics(database_url: str) -> None:
    asyncio.run(_unpaid_plan(database_url))


async def _unpaid_plan(url: str) -> None:
    async with _session(url, "dunning") as conn:
        # Statistics that expect 100 unpaid invoices a contract, and cheap sequential
        # reads: as the planner saw a table analyzed at a thousandth of its size, when it
        # scanned all of it for every batch (45 ms). The batch still probes the index
        # contract by contract.
        await conn.execute(
            "INSERT INTO invoices (invoice_number, contract, due_on, open_minor, currency)"
            " SELECT 'i' || g, g::text, '2026-12-15', 100, 'CZK'"
            " FROM generate_series(1, 200000) g ORDER BY random();"
            " ALTER TABLE invoices ALTER COLUMN contract SET (n_distinct = 2000);"
            " ANALYZE invoices; SET seq_page_cost = 0.1"
        )
        keys = [str(k) for k in range(100_000, 100_500)]
        plan = await _explain(conn, DQ.facts_of, keys)
        assert "Nested Loop" in plan and "Index Scan on invoices_contract" in plan, plan
        assert "Seq Scan on invoices" not in plan, plan
        facts = await conn.fetchrow(DQ.facts_of, keys + keys[:10])  # repeats too
        assert sorted(row[0] for row in facts["unpaid"]) == sorted(keys)


def test_done_actions_of_a_batch_are_probed_on_a_table_never_analyzed(database_url: str) -> None:
    asyncio.run(_actions_plan(database_url))


async def _actions_plan(url: str) -> None:
    async with _session(url, "dunning") as conn:
        # a sweep's actions, never analyzed (autovacuum off, or not yet come): the planner
        # guesses 0.5% of the rows for each key and, for a batch's 500, all of them
        await conn.execute(
            "INSERT INTO actions (contract, request_id, kind, step, decided_at)"
            " SELECT g::text, 'r' || g, 'reminder', 'r1', now()"
            " FROM generate_series(1, 100000) g ORDER BY random()"
        )
        keys = [str(k) for k in range(200_000, 200_500)] + ["17"]
        plan = await _explain(conn, DQ.facts_of, keys)
        assert "Nested Loop" in plan and "Seq Scan on actions" not in plan, plan
        facts = await conn.fetchrow(DQ.facts_of, [*keys, "17"])  # a repeat too
        assert facts["done"] == [("17", "r17")]


def test_worker_sessions_do_not_compile_queries(database_url: str) -> None:
    asyncio.run(_no_jit(database_url))


async def _no_jit(url: str) -> None:
    async with _session(url, "dunning") as conn:
        assert await conn.fetchval("SHOW jit") == "off"
    conn = await db.connect(url, "dunning")  # the CLIs' sessions too
    try:
        assert await conn.fetchval("SHOW jit") == "off"
    finally:
        await conn.close()


def test_the_relay_takes_its_rows_by_key_from_a_large_outbox(database_url: str) -> None:
    asyncio.run(_relay_plan(database_url))


async def _relay_plan(url: str) -> None:
    """A billing run leaves a million rows in invoicing's outbox; each relay round takes the
    oldest 5,000 by the primary key, never scanning the table, analyzed or not."""
    async with _session(url, "invoicing") as conn:
        await conn.execute(
            "INSERT INTO outbox (topic, key, value, event_type)"
            " SELECT 't', g::text::bytea, 'v', 'x.v1' FROM generate_series(1, 200000) g"
        )
        for analyze in (False, True):
            if analyze:
                await conn.execute("ANALYZE outbox")
            plan = await _explain(conn, RQ.take_outbox, 5000)
            assert "Index Scan using outbox_pkey on outbox" in plan, plan
            assert "Seq Scan" not in plan, plan
