"""Payments' handlers against the real PostgreSQL: pairing rules 1-5, reversals, the
operators' queue, credit notes, and (hypothesis) money conservation in any order with
duplicates."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas import events as ev
from schemas.envelope import envelope
from services.payments.service import AssignError, Payments
from services.payments.settings import PaymentsSettings
from services.runtime import db
from services.runtime.runs import Run, handle
from services.runtime.unit import Unit

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
ACCOUNT = "2001234561/2010"
CURRENCY = {"1001": "CZK", "1002": "CZK", "2001": "EUR"}


class Harness:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.payments = Payments(PaymentsSettings())
        self.issued = 0

    async def _unit(self, fn: Any) -> list[tuple[str, Any]]:
        async with self.conn.transaction():
            unit = Unit(self.conn, NOW, "/test")
            await fn(unit)
            await unit.settle()  # what the consumer's flush does before the commit
            return [(o[4], o[2]) for o in unit.outbox]

    async def contracts(self) -> None:
        for contract, currency in CURRENCY.items():
            data = ev.ContractUpserted(
                contract=contract, customer_name=contract, currency=currency, monthly_fee_minor=1
            )
            await self._unit(lambda u, d=data: self.payments.on_contract(u, Run.of(_ev(d), d)))

    async def invoice(self, contract: str, amount: int, due: date = date(2026, 11, 15)) -> str:
        number, data = self.invoice_data(contract, amount, due)
        await self._unit(lambda u: self.payments.on_invoice_issued(u, Run.of(_ev(data), data)))
        return number

    def invoice_data(
        self, contract: str, amount: int, due: date = date(2026, 11, 15)
    ) -> tuple[str, ev.InvoiceIssued]:
        self.issued += 1
        number = f"2026{self.issued:06d}"
        data = ev.InvoiceIssued(
            contract=contract,
            invoice_number=number,
            vs=contract,
            ss=number,
            period="2026-11",
            issued_on=date(2026, 11, 1),
            due_on=due,
            amount_minor=amount,
            currency=CURRENCY[contract],
            account=ACCOUNT,
        )
        return number, data

    async def receive(self, data: ev.PaymentReceived) -> list[str]:
        return [t for t, _ in await self.receive_many([data])]

    async def receive_many(self, items: list[Any]) -> list[tuple[str, Any]]:
        """Movements (and issued invoices) as one consumed batch: one unit, as the
        consumer runs it."""

        p = self.payments
        return await self._unit(
            lambda u: handle(
                u,
                [
                    (
                        p.on_invoice_issued
                        if isinstance(d, ev.InvoiceIssued)
                        else p.on_credit_note
                        if isinstance(d, ev.CreditNoteIssued)
                        else p.on_payment_received,
                        _ev(d),
                        d,
                    )
                    for d in items
                ],
            )
        )

    def credit_note(
        self, contract: str, number: str, amount: int, credited: int, total: int
    ) -> ev.CreditNoteIssued:
        """A credit note on invoice ``number`` (of ``total``): ``amount`` by this note,
        ``credited`` by all of its notes."""
        return ev.CreditNoteIssued(
            contract=contract,
            credit_note_number=f"D{number}-{credited}",
            invoice_number=number,
            ss=number,
            issued_on=date(2026, 11, 18),
            reason="wrong tariff",
            lines=[],
            vat=[],
            amount_minor=amount,
            currency=CURRENCY[contract],
            invoice_amount_minor=total,
            credited_minor=credited,
            due_minor=total - credited,
        )

    async def assign(self, tx: str, contract: str, **kw: Any) -> list[str]:
        async def go(u: Unit) -> None:
            await self.payments.assign(
                u,
                ACCOUNT,
                tx,
                contract,
                kw.get("invoice"),
                "tester",
                None,
                kw.get("remember", False),
            )

        return [t for t, _ in await self._unit(go)]

    async def invoice_state(self, number: str) -> tuple[int, bool]:
        row = await self.conn.fetchrow(
            "SELECT paid_minor, settled FROM invoices WHERE invoice_number = $1", number
        )
        return row["paid_minor"], row["settled"]

    async def tx(self, tx: str) -> asyncpg.Record:
        return await self.conn.fetchrow(
            "SELECT * FROM bank_transactions WHERE account = $1 AND bank_tx_id = $2", ACCOUNT, tx
        )


def _ev(data: Any) -> Any:
    return envelope("x.v1", "/test", None, data, NOW)


def pay(
    tx: str,
    amount: int,
    vs: str | None = None,
    ss: str | None = None,
    currency: str = "CZK",
    payer: str | None = None,
    message: str | None = None,
) -> ev.PaymentReceived:
    return ev.PaymentReceived(
        account=ACCOUNT,
        bank_tx_id=tx,
        booked_on=date(2026, 11, 16),
        value_on=date(2026, 11, 16),
        amount_minor=amount,
        currency=currency,
        vs=vs,
        ss=ss,
        counterparty_account=payer,
        message=message,
    )


async def harness(url: str) -> tuple[Harness, asyncpg.Connection]:
    await db.migrate(url, "payments")
    conn = await db.connect(url, "payments")
    h = Harness(conn)
    await h.contracts()
    return h, conn


def test_rules_reversal_and_queue(database_url: str) -> None:
    asyncio.run(_rules(database_url))


async def _rules(url: str) -> None:
    h, conn = await harness(url)
    try:
        a = await h.invoice("1001", 49900)
        b = await h.invoice("1001", 49900, due=date(2026, 12, 15))
        # rule 3: the message names an invoice (Hungarian közlemény style), no symbols
        out = await h.receive(pay("m1", 49900, message=f"szamla {b} november"))
        assert "payment.matched.v1" in out, str(dict(await h.tx("m1")))
        assert await h.invoice_state(b) == (49900, True)
        assert (await h.tx("m1"))["rule"] == "message-invoice"
        # rule 5: a phone number in the VS is never guessed
        out = await h.receive(pay("p1", 20000, vs="602123456", payer="19-2000145399/0800"))
        assert out == ["payment.unmatched.v1"]
        assert (await h.tx("p1"))["reason_code"] == "phone-number-vs"
        # no symbols, unknown payer: the queue; an operator assigns and confirms the payer
        assert await h.receive(pay("u1", 49900, payer="123-456/0100")) == ["payment.unmatched.v1"]
        assert (await h.tx("u1"))["reason_code"] == "no-symbols"
        out = await h.assign("u1", "1001", remember=True)
        assert "payment.matched.v1" in out and await h.invoice_state(a) == (49900, True)
        with pytest.raises(AssignError, match="matched, not unmatched"):
            await h.assign("u1", "1001")
        with pytest.raises(AssignError, match="billed in CZK"):
            await h.receive(pay("e1", 100, currency="EUR"))
            await h.assign("e1", "1001")
        # rule 3: the confirmed payer account now pairs on its own
        c = await h.invoice("1001", 30000)
        out = await h.receive(pay("u2", 30000, payer="123-456/0100"))
        assert (await h.tx("u2"))["rule"] == "payer-account"
        assert await h.invoice_state(c) == (30000, True)
        # overpayment: credit, then spent on the next invoice
        await h.receive(pay("v1", 10000, vs="1001"))
        d = await h.invoice("1001", 4000)
        assert await h.invoice_state(d) == (4000, True)
        # reversal of v1: its credit-paid invoice opens again, the rest of its credit leaves
        out = await h.receive(pay("r1", -10000, vs="1001"))
        assert "payment.reversed.v1" in out and "invoice.reopened.v1" in out
        assert await h.invoice_state(d) == (0, False)
        assert (await h.tx("v1"))["status"] == "reversed"
        assert (await h.tx("r1"))["status"] == "reversal"
        credit = await conn.fetchval("SELECT sum(remaining_minor) FROM credit_lots")
        assert credit == 0
        # a plain outgoing payment stays a debit in the queue's records
        assert await h.receive(pay("o1", -5000, payer="999/0300")) == ["payment.unmatched.v1"]
        # a reversal that arrives before its payment
        await h.receive(pay("r2", -2500, vs="1002"))
        out = await h.receive(pay("v2", 2500, vs="1002"))
        assert "payment.reversed.v1" in out and "payment.matched.v1" not in out
        assert (await h.tx("v2"))["status"] == "reversed"
        # redelivery of a payment changes nothing
        assert await h.receive(pay("m1", 49900, message=f"szamla {b} november")) == []
        await _conserved(conn)
    finally:
        await conn.close()


def test_credit_notes_lower_what_is_due_and_paid_above_it_becomes_credit(
    database_url: str,
) -> None:
    asyncio.run(_credit_notes(database_url))


async def _credit_notes(url: str) -> None:
    h, conn = await harness(url)
    try:
        # paid in full by two payments, then credited in part: the later payment's money
        # above what is now due becomes its credit, spent on the next invoice
        a = await h.invoice("1001", 49900)
        await h.receive(pay("a1", 30000, vs="1001"))
        await h.receive(pay("a2", 19900, vs="1001"))
        assert await h.invoice_state(a) == (49900, True)
        out = await h.receive_many([h.credit_note("1001", a, 25000, 25000, 49900)])
        assert out == []  # settled before, settled still: nothing to tell
        assert await h.invoice_state(a) == (24900, True)
        lots = await conn.fetch(
            "SELECT bank_tx_id, remaining_minor FROM credit_lots ORDER BY bank_tx_id"
        )
        assert [tuple(r) for r in lots] == [("a1", 5100), ("a2", 19900)]
        # the same note again, and an older one after it: nothing changes
        again = h.credit_note("1001", a, 25000, 25000, 49900)
        older = h.credit_note("1001", a, 10000, 10000, 49900)
        assert await h.receive_many([again, older]) == []
        assert await conn.fetchval("SELECT sum(remaining_minor) FROM credit_lots") == 25000
        b = await h.invoice("1001", 20000)
        assert await h.invoice_state(b) == (20000, True)
        # a partial credit note on an unpaid invoice leaves the rest open
        c = await h.invoice("1002", 49900)
        out = await h.receive_many([h.credit_note("1002", c, 19900, 19900, 49900)])
        assert [t for t, _ in out] == ["invoice.partially_paid.v1"]
        assert json.loads(out[0][1])["data"]["remaining_minor"] == 30000
        assert await h.receive(pay("c1", 30000, vs="1002")) == [
            "payment.matched.v1",
            "invoice.settled.v1",
        ]
        # fully credited, unpaid: settled by the credit, nothing paid, nothing to credit
        d = await h.invoice("1002", 49900, due=date(2026, 12, 15))
        out = await h.receive_many([h.credit_note("1002", d, 49900, 49900, 49900)])
        assert [t for t, _ in out] == ["invoice.settled.v1"]
        assert json.loads(out[0][1])["data"]["amount_minor"] == 0
        assert await h.invoice_state(d) == (0, True)
        # a payment given back to credit by a note and then reversed by the bank: what it
        # still paid opens again and its credit leaves with it
        out = await h.receive(pay("r1", -19900, vs="1001"))
        assert "payment.reversed.v1" in out
        await _conserved(conn)
    finally:
        await conn.close()


def test_a_contracts_credit_stays_under_its_limit(database_url: str) -> None:
    """Payments of the largest amount a bank can send, eleven of them: the eleventh would
    lift the credit over MAX_CREDIT_MINOR and is queued (credit-limit), in a batch and one
    by one, and the contract still takes payments after (before the limit, the credit sum
    overflowed bigint and every later payment to the contract dead-lettered)."""
    asyncio.run(_credit_limit(database_url))


async def _credit_limit(url: str) -> None:
    from schemas.money import MAX_AMOUNT_MINOR, MAX_CREDIT_MINOR

    h, conn = await harness(url)
    try:
        big = [pay(f"big{i}", MAX_AMOUNT_MINOR, vs="1001") for i in range(11)]
        out = await h.receive_many(big[:10])  # the batch path
        assert [t for t, _ in out] == ["payment.matched.v1"] * 10
        assert await h.receive(big[10]) == ["payment.unmatched.v1"]  # one by one
        assert (await h.tx("big10"))["reason_code"] == "credit-limit"
        credit = await conn.fetchval("SELECT sum(remaining_minor) FROM credit_lots")
        assert credit == 10 * MAX_AMOUNT_MINOR <= MAX_CREDIT_MINOR
        # the credit pays the next invoice, and a payment that fits under the limit applies
        a = await h.invoice("1001", 49900)
        assert await h.invoice_state(a) == (49900, True)
        assert await h.receive(pay("small", 49000, vs="1001")) == ["payment.matched.v1"]
        credit = await conn.fetchval("SELECT sum(remaining_minor) FROM credit_lots")
        assert credit == 10 * MAX_AMOUNT_MINOR - 900
        over = [pay("over1", 1000, vs="1001"), pay("over2", MAX_AMOUNT_MINOR, vs="1001")]
        out = await h.receive_many(over)  # in one batch, each seen against the limit
        assert [t for t, _ in out] == ["payment.unmatched.v1", "payment.unmatched.v1"]
        assert (await h.tx("over2"))["reason_code"] == "credit-limit"
        with pytest.raises(AssignError, match="over the limit"):
            await h.assign("big10", "1001")
        await _conserved(conn)
    finally:
        await conn.close()


async def _conserved(conn: asyncpg.Connection) -> None:
    # Money conservation, per currency: every credit received is allocated, kept as credit,
    # waiting unmatched, or was reversed.
    ledger = await conn.fetch(
        """SELECT t.currency,
                  sum(t.amount_minor) AS received,
                  coalesce(sum(t.amount_minor) FILTER (WHERE t.status = 'unmatched'), 0)
                      AS unmatched,
                  coalesce(sum(t.amount_minor) FILTER (WHERE t.status = 'reversed'), 0)
                      AS reversed,
                  (SELECT coalesce(sum(a.amount_minor), 0) FROM allocations a
                     JOIN invoices i USING (invoice_number)
                    WHERE NOT a.reversed AND i.currency = t.currency) AS allocated,
                  (SELECT coalesce(sum(l.remaining_minor), 0) FROM credit_lots l
                    WHERE l.currency = t.currency) AS credit
           FROM bank_transactions t WHERE t.amount_minor > 0
           GROUP BY t.currency ORDER BY t.currency"""
    )
    for row in ledger:
        assert row["received"] == (
            row["allocated"] + row["credit"] + row["unmatched"] + row["reversed"]
        ), dict(row)
    bad = await conn.fetch(
        """SELECT i.invoice_number, i.paid_minor, coalesce(sum(a.amount_minor), 0) AS live
           FROM invoices i LEFT JOIN allocations a
             ON a.invoice_number = i.invoice_number AND NOT a.reversed
           GROUP BY i.invoice_number
           HAVING i.paid_minor <> coalesce(sum(a.amount_minor), 0)
               OR i.paid_minor > i.amount_minor OR i.paid_minor < 0"""
    )
    assert not bad, [dict(r) for r in bad]


# --- money is conserved, in any order of arrival, with duplicates -------------------------


@dataclass(frozen=True)
class Op:
    kind: str  # invoice | pay | reverse | assign | credit
    n: int
    contract: str
    amount: int
    symbols: str  # vs | ss | none | payer | message


ops = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(["invoice", "pay", "pay", "reverse", "assign", "credit"]),
        n=st.integers(0, 5),
        contract=st.sampled_from(sorted(CURRENCY)),
        amount=st.sampled_from([100, 4000, 49900, 49940, 50000, 99800]),
        symbols=st.sampled_from(["vs", "ss", "none", "payer", "message"]),
    ),
    min_size=1,
    max_size=14,
)


@pytest.fixture(scope="module")
def conservation_db(pg_server_url: str) -> Any:
    from tests.conftest import with_database

    name = f"billing_test_{uuid.uuid4().hex[:10]}"
    url = with_database(pg_server_url, name)
    asyncio.run(db.ensure_database(url))
    asyncio.run(db.migrate(url, "payments"))
    yield url
    asyncio.run(db.drop_database(url))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=ops, duplicates=st.lists(st.integers(0, 30), max_size=4))
# One batch where every shortcut of the set-based path matters: a third invoice settled
# within the rounding tolerance, then a payment that must become credit rather than pay
# its tolerated remainder; a payment by SS and one without symbols in between (one-by-one
# path in mid-batch); an overpayment; a repeat of a movement within the batch.
@example(
    ops=[
        Op("invoice", 0, "1001", 49940, "vs"),
        Op("pay", 0, "1001", 49900, "vs"),
        Op("pay", 0, "1001", 49900, "vs"),
        Op("pay", 0, "1001", 49900, "vs"),
        Op("pay", 0, "1001", 100, "vs"),
        Op("pay", 2, "1002", 49900, "ss"),
        Op("pay", 1, "1002", 4000, "none"),
        Op("pay", 0, "1002", 99800, "vs"),
        Op("pay", 0, "1002", 4000, "vs"),
        Op("invoice", 0, "1002", 4000, "vs"),  # paid from the credit, in the same batch
        Op("invoice", 0, "1002", 100, "vs"),
        Op("pay", 0, "1002", 49900, "vs"),
    ],
    duplicates=[3, 8],
)
def test_money_is_conserved(conservation_db: str, ops: list[Op], duplicates: list[int]) -> None:
    asyncio.run(_conservation(conservation_db, ops, duplicates))


async def _conservation(url: str, script: list[Op], duplicates: list[int]) -> None:
    """Run the script one movement per transaction, then again with the movements between
    two other operations delivered as one batch: money is conserved both times, and the
    batch's set-based pairing ends in exactly the state and events of one-by-one."""
    conn = await db.connect(url, "payments")
    try:
        one_by_one = await _run_script(conn, script, duplicates, batched=False)
        batched = await _run_script(conn, script, duplicates, batched=True)
        assert batched == one_by_one
    finally:
        await conn.close()


async def _snapshot(conn: asyncpg.Connection) -> list[Any]:
    queries = [
        "SELECT account, bank_tx_id, status, contract, rule, reason_code, reversal_of,"
        " reversed_by FROM bank_transactions ORDER BY account, bank_tx_id",
        "SELECT account, bank_tx_id, invoice_number, amount_minor, rule, reversed"
        " FROM allocations ORDER BY id",
        "SELECT invoice_number, paid_minor, settled, forgiven_minor FROM invoices"
        " ORDER BY invoice_number",
        "SELECT account, bank_tx_id, contract, remaining_minor FROM credit_lots ORDER BY id",
    ]
    return [[tuple(r) for r in await conn.fetch(q)] for q in queries]


async def _run_script(
    conn: asyncpg.Connection, script: list[Op], duplicates: list[int], batched: bool
) -> list[Any]:
    events: list[tuple[str, Any]] = []
    pending: list[Any] = []

    async def deliver() -> None:
        if pending:
            events.extend(
                (t, json.loads(v)["data"]) for t, v in await h.receive_many(list(pending))
            )
            pending.clear()

    async def receive(data: Any, duplicate: bool = False) -> None:
        if batched:
            pending.append(data)
            return
        out = await h.receive_many([data])
        if duplicate:
            assert out == []  # redelivery is a no-op
        events.extend((t, json.loads(v)["data"]) for t, v in out)

    await conn.execute(
        "TRUNCATE bank_transactions, allocations, credit_lots, payer_accounts, invoices, contracts"
    )
    h = Harness(conn)
    await h.contracts()
    sent: list[ev.PaymentReceived] = []
    issued_data: list[ev.InvoiceIssued] = []
    # every contract starts with two open invoices, so payments have work to do
    owners = [c for c in sorted(CURRENCY) for _ in range(2)]
    invoices = [await h.invoice(c, 49900) for c in owners]
    owner = dict(zip(invoices, owners, strict=True))
    totals = dict.fromkeys(invoices, 49900)
    credited: dict[str, int] = {}
    for i, op in enumerate(script):
        if op.kind == "assign":
            await deliver()
        if op.kind == "invoice":
            number, issued = h.invoice_data(op.contract, op.amount)
            invoices.append(number)
            owner[number], totals[number] = op.contract, op.amount
            issued_data.append(issued)
            await receive(issued)
        elif op.kind == "pay":
            inv = invoices[op.n % len(invoices)] if invoices else None
            data = pay(
                f"t{i}",
                op.amount,
                vs=op.contract if op.symbols == "vs" else None,
                ss=inv if op.symbols == "ss" and inv else None,
                currency=CURRENCY[op.contract],
                payer=f"{op.n}-99/0800" if op.symbols == "payer" else None,
                message=f"faktura {inv}" if op.symbols == "message" and inv else None,
            )
            sent.append(data)
            await receive(data)
        elif op.kind == "reverse":
            # the bank returns an earlier payment, or one not seen yet (out of order)
            credits = [p for p in sent if p.amount_minor > 0]
            target = (
                credits[-1 - op.n % len(credits)]
                if credits
                else pay(f"late{i}", op.amount, vs="1001")
            )
            debit = target.model_copy(
                update={"bank_tx_id": f"rv{i}", "amount_minor": -target.amount_minor}
            )
            sent.append(debit)
            await receive(debit)
            if target.bank_tx_id.startswith("late"):
                sent.append(target)
                await receive(target)
        elif op.kind == "credit":
            # a credit note on an invoice, for part of what is left or all of it
            inv = invoices[op.n % len(invoices)]
            left = totals[inv] - credited.get(inv, 0)
            amount = min(op.amount, left) if op.symbols != "none" else left
            if amount > 0:
                credited[inv] = credited.get(inv, 0) + amount
                await receive(h.credit_note(owner[inv], inv, amount, credited[inv], totals[inv]))
        elif op.kind == "assign" and sent:
            tx = sent[op.n % len(sent)].bank_tx_id
            try:
                out = await h.assign(tx, op.contract, remember=op.symbols == "payer")
                events.extend((t, None) for t in out)
            except AssignError:
                pass  # not unmatched, a debit, another currency, or no payer account
        for k in duplicates:
            if k == i and sent:
                await receive(sent[-1], duplicate=True)
            if k == i and issued_data:  # the latest invoice again (no inbox in front of it)
                await receive(issued_data[-1], duplicate=True)
    await deliver()
    await _conserved(conn)
    return [events, await _snapshot(conn)]


def test_a_batch_of_payments_costs_the_same_statements_whatever_its_size(
    database_url: str,
) -> None:
    asyncio.run(_statements_per_batch(database_url))


async def _statements_per_batch(url: str) -> None:
    """Under load a batch's time is mostly its round trips to PostgreSQL, each a wait for a
    busy CPU: pairing a batch of plain payments takes a fixed number of statements (the
    transaction, one for the facts, one write per table), not one per payment."""
    h, conn = await harness(url)
    statements: list[str] = []
    sizes = (1, 10, 40)  # the first also has asyncpg learn the types of the results
    contracts = [str(7000 + i) for i in range(sum(sizes))]
    setup: list[tuple[Any, Any, Any]] = []
    for c in contracts:
        upserted = ev.ContractUpserted(
            contract=c, customer_name=c, currency="CZK", monthly_fee_minor=1
        )
        setup.append((h.payments.on_contract, _ev(upserted), upserted))
    for c in contracts:
        issued = ev.InvoiceIssued(
            contract=c, invoice_number=f"27{c}", vs=c, ss=f"27{c}", period="2026-11",
            issued_on=date(2026, 11, 1), due_on=date(2026, 11, 15), amount_minor=500,
            currency="CZK", account=ACCOUNT,
        )  # fmt: skip
        setup.append((h.payments.on_invoice_issued, _ev(issued), issued))
    try:
        await h._unit(lambda u: handle(u, setup))
        conn.add_query_logger(lambda logged: statements.append(logged.query))
        await asyncio.sleep(0)
        counts = []
        start = 0
        for n in sizes:
            statements.clear()
            out = await h.receive_many(
                [pay(f"s{c}", 500, vs=c, ss=f"27{c}") for c in contracts[start : start + n]]
            )
            await asyncio.sleep(0)  # asyncpg calls its loggers soon, not at once
            start += n
            assert [t for t, _ in out].count("invoice.settled.v1") == n
            counts.append(len(statements))
        # BEGIN, the facts, the transactions, the allocations, the invoices' figures, COMMIT
        assert counts[1:] == [6, 6], (counts, [s[:60] for s in statements])
    finally:
        await conn.close()


def test_a_settled_invoice_carries_when_its_payment_came(database_url: str) -> None:
    """invoice.settled's ``paid_at`` is the payments.received event's time, where dunning
    and provisioning time the reconnect from (billing_reconnect_seconds); settled by a
    credit note, nothing came: none."""

    async def go() -> None:
        h, conn = await harness(database_url)
        try:
            await h.invoice("1001", 49900)
            out = await h.receive_many([pay("p1", 49900, vs="1001")])
            settled = [json.loads(v)["data"] for t, v in out if t == "invoice.settled.v1"]
            assert [s["paid_at"] for s in settled] == [NOW.isoformat().replace("+00:00", "Z")]
            b = await h.invoice("1002", 49900)
            out = await h.receive_many([h.credit_note("1002", b, 49900, 49900, 49900)])
            assert [json.loads(v)["data"]["paid_at"] for _, v in out] == [None]
        finally:
            await conn.close()

    asyncio.run(go())
