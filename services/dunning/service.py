"""Dunning handlers: record facts, then recompute the contract's decision and act on it."""

from __future__ import annotations

from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.dunning import domain
from services.dunning.policy import Policy, presets
from services.runtime import logs, sql, timers
from services.runtime.settings import Settings, Topics
from services.runtime.unit import Unit

Q = sql.load(__file__)
log = logs.get(__name__)

DEFAULT_POLICY = "notice-then-suspend"


async def lock_contract(unit: Unit, contract: str) -> None:
    """Serialise work on one contract across instances and the timer loop: whoever holds
    the lock sees every fact the previous holder committed."""
    await unit.conn.execute("SELECT pg_advisory_xact_lock(hashtext('dunning:' || $1))", contract)


class Dunning:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self.policies: dict[str, Policy] = presets()

    def policy(self, name: str) -> Policy:
        found = self.policies.get(name)
        if found is None:
            log.warning("unknown policy, using the default", policy=name)
            return self.policies[DEFAULT_POLICY]
        return found

    async def on_contract(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.ContractUpserted)
        await lock_contract(unit, data.contract)
        await unit.conn.execute(
            Q.upsert_contract, data.contract, data.country, data.currency, data.policy, data.exempt
        )
        await self.recompute(unit, data.contract)

    async def on_invoice_issued(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoiceIssued)
        await lock_contract(unit, data.contract)
        await unit.conn.execute(
            Q.invoice_issued,
            data.invoice_number,
            data.contract,
            data.vs,
            data.ss,
            data.due_on,
            data.amount_minor,
            data.currency,
        )
        await self.recompute(unit, data.contract)

    async def on_invoice_settled(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoiceSettled)
        await lock_contract(unit, data.contract)
        await unit.conn.execute(Q.invoice_settled, data.invoice_number, data.contract)
        await self.recompute(unit, data.contract)

    async def on_partially_paid(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoicePartiallyPaid)
        await lock_contract(unit, data.contract)
        await unit.conn.execute(
            Q.invoice_partially_paid, data.invoice_number, data.contract, data.remaining_minor
        )
        await self.recompute(unit, data.contract)

    async def on_reopened(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        """A reversed payment: the invoice owes again, and dunning goes back to wherever
        the facts now place the contract (deadlines stay anchored on the due date)."""
        assert isinstance(data, ev.InvoiceReopened)
        await lock_contract(unit, data.contract)
        await unit.conn.execute(
            Q.invoice_reopened, data.invoice_number, data.contract, data.remaining_minor
        )
        await self.recompute(unit, data.contract)

    async def on_acknowledged(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.NoticeAcknowledged)
        await lock_contract(unit, data.contract)
        await unit.conn.execute(Q.acknowledge, data.contract, data.acknowledged_at, unit.now)
        await self.recompute(unit, data.contract)

    async def on_timer(self, unit: Unit, contract: str) -> None:
        await lock_contract(unit, contract)
        await self.recompute(unit, contract)

    async def facts(self, unit: Unit, contract: str) -> tuple[domain.Facts, Policy] | None:
        conn = unit.conn
        c = await conn.fetchrow(Q.get_contract, contract)
        if c is None:
            return None  # invoices before the contract: decided when the contract arrives
        st = await conn.fetchrow(Q.get_state, contract)
        invoices = tuple(
            domain.UnpaidInvoice(
                r["invoice_number"], r["vs"], r["ss"], r["due_on"], r["open_minor"], r["currency"]
            )
            for r in await conn.fetch(Q.unpaid_invoices, contract)
        )
        done = frozenset(r["request_id"] for r in await conn.fetch(Q.done_actions, contract))
        facts = domain.Facts(
            contract=contract,
            country=c["country"],
            exempt=c["exempt"],
            invoices=invoices,
            stage=st["stage"] if st else "active",
            episode=st["episode"] if st else None,
            acknowledged_at=st["acknowledged_at"] if st else None,
            done=done,
        )
        return facts, self.policy(c["policy"])

    async def recompute(self, unit: Unit, contract: str) -> domain.Decision | None:
        found = await self.facts(unit, contract)
        if found is None:
            return None
        facts, policy = found
        tolerance = self.settings.rounding_tolerance.get(
            facts.invoices[0].currency if facts.invoices else "", 0
        )
        decision = domain.decide(facts, policy, unit.now, tolerance)
        for action in decision.actions:
            new = await unit.conn.fetchval(
                Q.insert_action, contract, action.request_id, action.kind, action.step, unit.now
            )
            if new is not None:
                self._emit(unit, contract, policy, decision, action)
        await unit.conn.execute(
            Q.save_state,
            contract,
            decision.stage,
            decision.episode,
            decision.acknowledged_at,
            decision.why,
            decision.next_check_at,
            unit.now,
        )
        await timers.schedule(unit.conn, contract, decision.next_check_at)
        return decision

    def _emit(
        self, unit: Unit, contract: str, policy: Policy, d: domain.Decision, a: domain.Action
    ) -> None:
        if a.kind == "skip":
            log.info("step overtaken, skipped", step=a.step, request_id=a.request_id)
            return
        if a.kind == "restore":
            unit.emit(
                self.topics.dunning,
                "restore.requested.v1",
                contract,
                ev.RestoreRequested(
                    contract=contract,
                    request_id=a.request_id,
                    reason="overdue balance settled",
                    decided_at=unit.now,
                ),
            )
            return
        currency = d.currency or "CZK"
        common = dict(
            contract=contract,
            request_id=a.request_id,
            step=a.step,
            policy=policy.name,
            overdue_minor=d.overdue_minor,
            currency=currency,
            invoices=[
                ev.OverdueInvoice(
                    invoice_number=i.invoice_number,
                    vs=i.vs,
                    ss=i.ss,
                    due_on=i.due_on,
                    open_minor=i.open_minor,
                    currency=i.currency,
                )
                for i in d.overdue
            ],
            account=self.settings.bank_accounts.get(currency, ""),
            decided_at=unit.now,
        )
        if a.kind == "reminder":
            unit.emit(
                self.topics.dunning,
                "reminder.requested.v1",
                contract,
                ev.ReminderRequested(**common, channels=list(a.channels)),
            )
        elif a.kind == "notice":
            unit.emit(
                self.topics.dunning, "notice.requested.v1", contract, ev.NoticeRequested(**common)
            )
        elif a.kind == "suspend":
            unit.emit(
                self.topics.dunning,
                "suspend.requested.v1",
                contract,
                ev.SuspendRequested(**common, acknowledged_at=d.acknowledged_at),
            )
