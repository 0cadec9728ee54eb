"""Dunning scenarios against PostgreSQL, on a simulated clock that fires the contract's
durable timer exactly when it is due (as the timer loop does on the shared test clock):
both presets, a notice never confirmed, a partial payment, catch-up after downtime, a
reversed payment, a promise to pay, an operator's postponement and exemption, a payment
waiting unmatched, an invoice delivered again at every step, and credit notes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from schemas import events as ev
from schemas.envelope import envelope
from services.dunning.service import Dunning
from services.dunning.settings import DunningSettings
from services.runtime import db
from services.runtime.clock import set_clock
from services.runtime.runs import Run, handle
from services.runtime.unit import Unit

START = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Prague
PRAGUE = ZoneInfo("Europe/Prague")


class Sim:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.d = Dunning(DunningSettings())
        self.now = START
        self.log: list[tuple[str, str, dict[str, Any]]] = []  # (day, type, data)
        self.pending: list[tuple[Any, Any, Any]] | None = None

    async def _unit(self, fn: Any) -> None:
        async with self.conn.transaction():
            unit = Unit(self.conn, self.now, "/test")
            await fn(unit)
            await unit.settle()  # what the consumer's flush does before the commit
            for _, _, value, _, type_ in unit.outbox:
                data = json.loads(value)["data"]
                local = self.now.astimezone(PRAGUE)
                self.log.append((f"{local:%m-%d}", type_, data))

    async def event(self, handler: Any, type_: str, data: Any) -> None:
        e = envelope(type_, "/test", getattr(data, "contract", None), data, self.now)
        if self.pending is not None:
            self.pending.append((handler, e, data))
        else:
            await self._unit(lambda u: handler(u, Run.of(e, data)))

    @contextlib.asynccontextmanager
    async def one_batch(self) -> AsyncIterator[None]:
        """The events sent inside, handled as one consumed batch (one unit of work)."""
        self.pending = []
        yield
        pending, self.pending = self.pending, None

        await self._unit(lambda u: handle(u, pending))

    async def contract(self, contract: str, policy: str | None = None, **kw: Any) -> None:
        data = ev.ContractUpserted(
            contract=contract, customer_name=contract, currency="CZK", monthly_fee_minor=49900,
            policy=policy, **kw,
        )  # fmt: skip
        await self.event(self.d.on_contract, "contract.upserted.v1", data)

    async def invoice(self, contract: str, number: str, due: date, amount: int = 49900) -> None:
        data = ev.InvoiceIssued(
            contract=contract, invoice_number=number, vs=contract, ss=number, period="2026-12",
            issued_on=date(2026, 12, 1), due_on=due, amount_minor=amount, currency="CZK",
            account="2001234561/2010",
        )  # fmt: skip
        await self.event(self.d.on_invoice_issued, "invoice.issued.v1", data)

    async def settle(self, contract: str, number: str, paid_at: datetime | None = None) -> None:
        data = ev.InvoiceSettled(
            contract=contract, invoice_number=number, ss=number, amount_minor=49900,
            paid_minor=49900, currency="CZK", settled_on=self.now.date(), within_tolerance_minor=0,
            paid_at=paid_at,
        )  # fmt: skip
        await self.event(self.d.on_invoice_settled, "invoice.settled.v1", data)

    async def partly(self, contract: str, number: str, remaining: int) -> None:
        data = ev.InvoicePartiallyPaid(
            contract=contract, invoice_number=number, ss=number, amount_minor=49900,
            paid_minor=49900 - remaining, remaining_minor=remaining, currency="CZK",
        )  # fmt: skip
        await self.event(self.d.on_partially_paid, "invoice.partially_paid.v1", data)

    async def reopen(self, contract: str, number: str) -> None:
        data = ev.InvoiceReopened(
            contract=contract, invoice_number=number, ss=number, amount_minor=49900,
            paid_minor=0, remaining_minor=49900, currency="CZK", reason="reversed",
        )  # fmt: skip
        await self.event(self.d.on_reopened, "invoice.reopened.v1", data)

    async def credit(
        self, contract: str, number: str, amount: int, credited: int, total: int = 49900
    ) -> None:
        """A credit note on ``number``: ``amount`` by this note, ``credited`` by all of its."""
        data = ev.CreditNoteIssued(
            contract=contract, credit_note_number=f"D{number}", invoice_number=number,
            ss=number, issued_on=self.now.date(), reason="wrong tariff", lines=[], vat=[],
            amount_minor=amount, currency="CZK", invoice_amount_minor=total,
            credited_minor=credited, due_minor=total - credited,
        )  # fmt: skip
        await self.event(self.d.on_credit_note, "credit_note.issued.v1", data)

    async def acknowledge(self, contract: str) -> None:
        data = ev.NoticeAcknowledged(
            contract=contract, acknowledged_at=self.now, address="10.0.0.1", user_agent="test"
        )
        await self.event(self.d.on_acknowledged, "notice.acknowledged.v1", data)

    async def promise(self, contract: str, days: int) -> None:
        data = ev.PromiseMade(contract=contract, days=days, by="customer", made_at=self.now)
        await self.event(self.d.on_promise, "promise.made.v1", data)

    async def run_until(self, end: datetime, down: bool = False, batched: bool = False) -> None:
        """Fire each due timer at its time (``down``: the worker is off, nothing fires;
        ``batched``: all timers due at that time at once, as the timer loop's sweep)."""
        while True:
            row = await self.conn.fetchrow(
                "SELECT key, due_at FROM timers WHERE due_at <= $1 ORDER BY due_at LIMIT 1", end
            )
            if row is None or down:
                self.now = end
                return
            self.now = max(self.now, row["due_at"])
            if batched:
                keys = [
                    r["key"]
                    for r in await self.conn.fetch(
                        "SELECT key FROM timers WHERE due_at <= $1 ORDER BY due_at", self.now
                    )
                ]
                await self.conn.execute("DELETE FROM timers WHERE key = ANY($1::text[])", keys)
                await self._unit(lambda u, k=keys: self.d.on_timers(u, k))
            else:
                await self._unit(lambda u, k=row["key"]: self.d.on_timer(u, k))

    def acts(self, contract: str) -> list[tuple[str, str]]:
        return [
            (day, t.split(".")[0]) for day, t, data in self.log
            if data.get("contract") == contract and t.endswith("requested.v1")
        ]  # fmt: skip


def run(url: str, scenario: Any) -> None:
    async def go() -> None:
        await db.migrate(url, "dunning")
        conn = await db.connect(url, "dunning")
        try:
            await scenario(Sim(conn))
        finally:
            await conn.close()

    asyncio.run(go())


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def test_notice_then_suspend_preset(database_url: str) -> None:
    async def scenario(s: Sim) -> None:
        await s.contract("1002")
        await s.invoice("1002", "2026000002", date(2026, 12, 15))
        await s.run_until(at("2026-12-25"))
        assert s.acts("1002") == [
            ("12-18", "reminder"), ("12-22", "reminder"), ("12-25", "notice")
        ]  # fmt: skip
        await s.acknowledge("1002")  # Friday 25 December, 10:00
        await s.run_until(at("2027-01-04", 8))
        assert s.acts("1002")[-1] == ("12-25", "notice")  # 10 days: 4 January 10:00
        await s.run_until(at("2027-01-07"))
        # due Monday 4 January at 10:00 Prague, acted on at once (a working day)
        assert ("01-04", "suspend") in s.acts("1002")
        paid_at = s.now - timedelta(seconds=1)  # the payments.received event's time
        await s.settle("1002", "2026000002", paid_at)
        assert s.acts("1002")[-1][1] == "restore"
        # carried on to provisioning, which times the reconnect (billing_reconnect_seconds)
        (restore,) = [d for _, t, d in s.log if t == "restore.requested.v1"]
        assert restore["paid_at"] == paid_at.isoformat().replace("+00:00", "Z")

    run(database_url, scenario)


def test_a_notice_never_confirmed_suspends_at_its_deadline(database_url: str) -> None:
    """The customer never confirms the notice and nothing else happens: the timer the
    notice's decision set still fires, and the preset's hard deadline (30 days after the
    notice, Sunday 24 January; held over the weekend) suspends."""

    async def scenario(s: Sim) -> None:
        await s.contract("1031")
        await s.invoice("1031", "2026001031", date(2026, 12, 15))
        await s.run_until(at("2027-02-28"))
        assert s.acts("1031") == [
            ("12-18", "reminder"), ("12-22", "reminder"), ("12-25", "notice"),
            ("01-25", "suspend"),
        ]  # fmt: skip

    run(database_url, scenario)


def test_batches_decide_as_one_by_one_does(database_url: str) -> None:
    """Many contracts' facts in one batch and their timers in one sweep: every contract
    gets exactly what the one-by-one preset test gets."""

    async def scenario(s: Sim) -> None:
        contracts = [str(1100 + i) for i in range(8)]
        async with s.one_batch():
            for c in contracts:
                await s.contract(c)
                await s.invoice(c, f"20260{c}", date(2026, 12, 15))
        await s.run_until(at("2026-12-25"), batched=True)
        for c in contracts:
            assert s.acts(c) == [
                ("12-18", "reminder"), ("12-22", "reminder"), ("12-25", "notice")
            ]  # fmt: skip
        async with s.one_batch():  # four pay, one confirms the notice, in one batch
            for c in contracts[:4]:
                await s.settle(c, f"20260{c}")
            await s.acknowledge(contracts[4])
        for c in contracts[:4]:
            assert s.acts(c)[-1][1] == "restore"
        await s.run_until(at("2027-01-07"), batched=True)
        assert s.acts(contracts[4])[-1] == ("01-04", "suspend")
        for c in contracts[5:]:  # not confirmed: the 30-day deadline has not come
            assert s.acts(c)[-1] == ("12-25", "notice")
        async with s.one_batch():  # the same contract twice in one batch
            await s.settle(contracts[4], f"20260{contracts[4]}")
            await s.invoice(contracts[4], "2027001104", date(2027, 1, 15))
        assert s.acts(contracts[4])[-1][1] == "restore"
        assert sum(1 for _ in s.acts(contracts[4])) == 5

    run(database_url, scenario)


def test_a_batch_of_restores_costs_the_same_statements_whatever_its_size(
    database_url: str,
) -> None:
    """Under load a batch's time is mostly its round trips to PostgreSQL: deciding the
    restores of a batch of payments takes a fixed number of statements, not one per
    contract."""

    async def scenario(s: Sim) -> None:
        sizes = (1, 10, 40)  # the first also has asyncpg learn the types of the results
        contracts = [str(1300 + i) for i in range(sum(sizes))]
        async with s.one_batch():
            for c in contracts:
                await s.contract(c)
                await s.invoice(c, f"20260{c}", date(2026, 12, 15))
        await s.run_until(at("2026-12-25"), batched=True)
        async with s.one_batch():
            for c in contracts:
                await s.acknowledge(c)
        await s.run_until(at("2027-01-07"), batched=True)
        assert all(s.acts(c)[-1][1] == "suspend" for c in contracts)
        statements: list[str] = []
        s.conn.add_query_logger(lambda logged: statements.append(logged.query))
        counts = []
        start = 0
        for n in sizes:
            await asyncio.sleep(0)  # asyncpg calls its loggers soon, not at once
            statements.clear()
            async with s.one_batch():
                for c in contracts[start : start + n]:
                    await s.settle(c, f"20260{c}")
            await asyncio.sleep(0)
            assert all(s.acts(c)[-1][1] == "restore" for c in contracts[start : start + n])
            start += n
            counts.append(len(statements))
        # BEGIN, the contracts' locks, the settled invoices, the facts, the actions, the
        # states, the timers, COMMIT
        assert counts[1:] == [8, 8], (counts, [q[:60] for q in statements])

    run(database_url, scenario)


def test_due_20th_restrict_preset(database_url: str) -> None:
    async def scenario(s: Sim) -> None:
        await s.contract("2001", policy="due-20th-restrict")
        await s.invoice("2001", "2026000020", date(2026, 12, 20))
        await s.run_until(at("2027-01-02"))
        assert s.acts("2001") == [("12-21", "reminder"), ("01-01", "restrict")]  # at 00:00
        [reminder] = [d for _, t, d in s.log if t == "reminder.requested.v1"]
        assert reminder["channels"] == ["email", "sms"]
        await s.settle("2001", "2026000020")
        assert s.acts("2001")[-1][1] == "restore"

    run(database_url, scenario)


def test_partial_payment_and_catch_up_after_downtime(database_url: str) -> None:
    async def scenario(s: Sim) -> None:
        for c in ("1003", "1004"):
            await s.contract(c)
            await s.invoice(c, f"202600{c}", date(2026, 12, 15))
        await s.run_until(at("2026-12-18"))
        await s.partly("1003", "2026001003", 10000)  # paid most, not all
        # worker down from the 19th to the 26th: only the step that applies now, once
        await s.run_until(at("2026-12-26"), down=True)
        await s.settle("1004", "2026001004")  # 1004 paid meanwhile: nothing more for it
        await s.run_until(at("2026-12-26", 10))
        assert s.acts("1003") == [("12-18", "reminder"), ("12-26", "notice")]
        assert s.acts("1004") == [("12-18", "reminder")]
        skipped = await s.conn.fetch(
            "SELECT request_id FROM actions WHERE contract = '1003' AND kind = 'skip'"
        )
        assert [r["request_id"] for r in skipped] == ["reminder-2@2026001003"]

    run(database_url, scenario)


def test_reversal_puts_the_contract_back_in_notice(database_url: str) -> None:
    async def scenario(s: Sim) -> None:
        await s.contract("1005")
        await s.invoice("1005", "2026000005", date(2026, 12, 15))
        await s.run_until(at("2026-12-28"))
        await s.acknowledge("1005")
        await s.settle("1005", "2026000005")  # paid: restore
        (restore,) = [d for _, t, d in s.log if t == "restore.requested.v1"]
        assert restore["paid_at"] is None  # not by a payment seen: nothing to time
        await s.run_until(at("2026-12-29"))
        await s.reopen("1005", "2026000005")  # the bank took the payment back
        assert [a[1] for a in s.acts("1005")] == [
            "reminder", "reminder", "notice", "restore", "notice"
        ]  # fmt: skip
        state = await s.conn.fetchval("SELECT stage FROM state WHERE contract = '1005'")
        assert state == "notice"

    run(database_url, scenario)


def test_promise_postpones_and_operators_postpone_or_exempt(database_url: str) -> None:
    async def scenario(s: Sim) -> None:
        for c in ("1006", "1007", "1008"):
            await s.contract(c)
            await s.invoice(c, f"202600{c}", date(2026, 12, 15))
        await s.run_until(at("2026-12-28"))
        notice = next(d for _, t, d in s.log if t == "notice.requested.v1")
        assert notice["promise_max_days"] == 5
        for c in ("1006", "1007", "1008"):
            await s.acknowledge(c)  # Monday 28 December 09:00 UTC: suspend due 7 January
        await s.promise("1006", 9)  # asks for 9, the policy allows 5: 12 January
        await s.promise("1006", 3)  # a second promise is refused
        rows = await s.conn.fetch(
            "SELECT until, accepted, note FROM promises WHERE contract = '1006' ORDER BY id"
        )
        assert [(r["until"], r["accepted"]) for r in rows] == [
            (at("2027-01-12"), True), (at("2027-01-12"), False)
        ]  # fmt: skip
        data = ev.PromiseMade(
            contract="1007", until=at("2027-01-20"), by="operator", reason="pays on the 20th",
            made_at=s.now,
        )  # fmt: skip
        await s.event(s.d.on_promise, "promise.made.v1", data)
        await s._unit(lambda u: s.d.set_exempt(u, "1008", "a school", "operator"))
        await s.run_until(at("2027-01-21", 10))
        suspended = {c: day for day, t, d in s.log if t == "suspend.requested.v1"
                     for c in [d["contract"]]}  # fmt: skip
        assert suspended == {"1006": "01-12", "1007": "01-20"}  # 1008 exempt: never

    run(database_url, scenario)


def test_unmatched_payment_holds_the_suspension(database_url: str) -> None:
    async def scenario(s: Sim) -> None:
        await s.contract("1009")
        await s.invoice("1009", "2026001009", date(2026, 12, 15))
        await s.run_until(at("2026-12-28"))
        await s.acknowledge("1009")
        await s.run_until(at("2027-01-06"))
        unmatched = ev.PaymentUnmatched(
            account="acc", bank_tx_id="tx-eur", booked_on=s.now.date(), amount_minor=2000,
            currency="EUR", vs="1009", ss=None, reason_code="currency-mismatch", reason="EUR",
        )  # fmt: skip
        await s.event(s.d.on_unmatched, "payment.unmatched.v1", unmatched)
        await s.run_until(at("2027-01-19"))
        assert [a for a in s.acts("1009") if a[1] == "suspend"] == []
        matched = ev.PaymentMatched(
            contract="1009", account="acc", bank_tx_id="tx-eur", booked_on=s.now.date(),
            amount_minor=2000, currency="CZK", allocations=[], credit_minor=2000,
            credit_balance_minor=2000, rule="manual",
        )  # fmt: skip
        await s.event(s.d.on_matched, "payment.matched.v1", matched)  # an operator sorted it
        assert ("01-19", "suspend") in s.acts("1009")

    run(database_url, scenario)


def test_explain_and_preview_for_operators(
    database_url: str, monkeypatch: Any, capsys: Any
) -> None:
    async def scenario(s: Sim) -> None:
        await s.contract("1010")
        await s.invoice("1010", "2026001010", date(2026, 12, 15))
        await s.run_until(at("2026-12-19"))
        await set_clock(s.conn, at("2026-12-19"))  # what the CLI reads as now (test clock)

    run(database_url, scenario)
    from services.cli import main as billing
    from services.runtime.settings import get_settings

    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_TEST_CLOCK", "true")
    get_settings.cache_clear()
    try:
        billing(["dunning", "preview", "--on", "2026-12-22"])
        out = capsys.readouterr().out
        assert "1010         reminder  reminder-2" in out and "1 action(s)" in out
        billing(["dunning", "preview", "--on", "2026-12-25"])
        assert "1010         notice    notice" in capsys.readouterr().out
        billing(["dunning", "explain", "1010"])
        out = capsys.readouterr().out
        assert "reminder reminder-1@2026001010" in out
        assert "notice (step 'notice' of policy notice-then-suspend)" in out
    finally:
        get_settings.cache_clear()


def test_an_invoice_delivered_again_at_any_step_changes_nothing(database_url: str) -> None:
    """Dunning applies invoice.issued without an inbox row (a keyed type): a redelivery at
    any point of the invoice's life, after payments changed it, leaves the same facts,
    stage, timers and requests as one delivery. Contract 1022 gets its invoice again after
    every step; 1021 lives the same life without."""

    async def scenario(s: Sim) -> None:
        plain, again = "1021", "1022"

        async def both(step: Any) -> None:
            for c in (plain, again):
                await step(c)
            await s.invoice(again, f"20260{again}", date(2026, 12, 15))

        await both(s.contract)
        await both(lambda c: s.invoice(c, f"20260{c}", date(2026, 12, 15)))
        await s.run_until(at("2026-12-19"))
        await both(lambda c: s.partly(c, f"20260{c}", 10000))
        await s.run_until(at("2026-12-25", 12))
        await both(s.acknowledge)
        await s.run_until(at("2027-01-07"))
        await both(lambda c: s.settle(c, f"20260{c}"))
        await s.run_until(at("2027-01-08"))
        await both(lambda c: s.reopen(c, f"20260{c}"))
        await s.run_until(at("2027-01-20"))
        assert [a[1] for a in s.acts(plain)] == [
            "reminder", "reminder", "notice", "suspend", "restore", "notice"
        ]  # fmt: skip
        assert s.acts(again) == s.acts(plain)

        async def rows(contract: str) -> list[str]:
            out = []
            for table in ("invoices", "state", "timers", "actions"):
                where = "key" if table == "timers" else "contract"
                # status_key: a hash of the explanation, which names the contract
                for r in await s.conn.fetch(
                    f"SELECT (to_jsonb(t) - 'status_key')::text AS row FROM {table} t"
                    f" WHERE {where} = $1 ORDER BY 1",
                    contract,
                ):
                    out.append(f"{table}: {r['row'].replace(contract, 'C')}")
            return out

        assert await rows(again) == await rows(plain)

        def told(contract: str) -> list[str]:
            return [
                json.dumps({k: v for k, v in d.items() if k != "decided_at"}).replace(contract, "C")
                for _, t, d in s.log
                if t == "dunning.status.v1" and d["contract"] == contract
            ]

        assert told(again) == told(plain) != []

    run(database_url, scenario)


def test_a_credit_note_ends_dunning_and_restores_access(database_url: str) -> None:
    """A suspended customer's invoice credited in full: no longer overdue, access restored
    and nothing more sent, even when payments' older word about the invoice (partly paid,
    or the payment taken back) arrives after the note."""

    async def scenario(s: Sim) -> None:
        await s.contract("1041")
        await s.invoice("1041", "2026001041", date(2026, 12, 15))
        await s.run_until(at("2026-12-25"))
        await s.acknowledge("1041")
        await s.run_until(at("2027-01-07"))
        assert s.acts("1041")[-1] == ("01-04", "suspend")
        await s.credit("1041", "2026001041", 20000, 20000)  # part: still overdue
        assert s.acts("1041")[-1] == ("01-04", "suspend")
        await s.credit("1041", "2026001041", 29900, 49900)  # the rest: all credited
        assert s.acts("1041")[-1] == ("01-07", "restore")
        await s.partly("1041", "2026001041", 10000)
        await s.reopen("1041", "2026001041")
        await s.credit("1041", "2026001041", 29900, 49900)  # delivered again
        await s.run_until(at("2027-03-01"))
        assert s.acts("1041")[-1] == ("01-07", "restore")
        stage = await s.conn.fetchval("SELECT stage FROM state WHERE contract = '1041'")
        assert stage == "active"

    run(database_url, scenario)


def test_a_partial_credit_note_leaves_the_rest_overdue(database_url: str) -> None:
    """A credit note for part of an overdue invoice: the rest stays overdue and dunning
    goes on to suspension; the invoice is open for what is left, not more, even when
    payments' figure from before the note arrives later."""

    async def scenario(s: Sim) -> None:
        await s.contract("1042")
        await s.invoice("1042", "2026001042", date(2026, 12, 15))
        await s.run_until(at("2026-12-20"))
        await s.credit("1042", "2026001042", 19900, 19900)
        await s.partly("1042", "2026001042", 39900)  # 10000 paid, said before the note
        open_minor = await s.conn.fetchval(
            "SELECT open_minor FROM invoices WHERE invoice_number = '2026001042'"
        )
        assert open_minor == 30000
        await s.run_until(at("2027-02-28"))
        assert [a[1] for a in s.acts("1042")] == ["reminder", "reminder", "notice", "suspend"]

    run(database_url, scenario)
