"""Dunning handlers: record facts, then recompute the contract's decision and act on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from schemas import events as ev
from services.dunning import domain
from services.dunning.policy import Policy, load_all
from services.dunning.settings import DunningSettings
from services.runtime import audit, logs, sql, timers
from services.runtime.runs import Run
from services.runtime.unit import Unit

Q = sql.load(__file__)
log = logs.get(__name__)


class NotExempt(ValueError):
    """An operator lifted an exemption the contract does not have."""


async def lock_contract(unit: Unit, contract: str) -> None:
    """Serialise work on one contract across instances and the timer loop: whoever holds
    the lock sees every fact the previous holder committed."""
    await unit.conn.fetchval(Q.lock_contracts, [contract])


class Dunning:
    def __init__(self, settings: DunningSettings) -> None:
        self.settings = settings
        # contract -> when the payment that settled one of its invoices in the batch being
        # applied arrived: a restore this batch decides carries it (billing_reconnect_seconds)
        self.paid_at: dict[str, datetime] = {}
        self.policies: dict[str, Policy] = load_all(settings.dunning_policy_dir)
        for group, name in settings.dunning_group_policies.items():
            if name not in self.policies:
                raise ValueError(
                    f"BILLING_DUNNING_GROUP_POLICIES[{group}]: no policy {name!r}"
                    f" (known: {', '.join(sorted(self.policies))})"
                )
        if settings.dunning_default_policy not in self.policies:
            raise ValueError(
                f"BILLING_DUNNING_DEFAULT_POLICY: no policy {settings.dunning_default_policy!r}"
            )

    def policy(self, name: str | None, group: str | None = None) -> Policy:
        """The contract's own policy, else its group's, else the default."""
        if name is None and group is not None:
            name = self.settings.dunning_group_policies.get(group)
        found = self.policies.get(name or self.settings.dunning_default_policy)
        if found is None:
            log.warning("unknown policy, using the default", policy=name)
            return self.policies[self.settings.dunning_default_policy]
        return found

    # --- facts: staged per event, decided once per contract per batch ----------------------
    # The common facts are staged writes; the contract's decision is deferred to the end of
    # the batch, where ``recompute_many`` locks all its contracts, runs the staged writes
    # and decides every contract with a few set-based queries. Rare events settle first and
    # then work directly, as before.

    def _touched(self, unit: Unit, contract: str) -> None:
        unit.later(self._recompute_deferred, contract)

    async def _recompute_deferred(self, unit: Unit, contracts: list[str]) -> None:
        try:
            await self.recompute_many(unit, contracts)
        finally:
            for contract in contracts:
                self.paid_at.pop(contract, None)

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        for data in run:
            unit.stage_row(
                Q.upsert_contracts,
                data.contract,
                data.contract,
                data.country,
                data.currency,
                data.policy,
                data.exempt,
                data.group,
            )
            self._touched(unit, data.contract)

    async def on_invoice_issued(self, unit: Unit, run: Run[ev.InvoiceIssued]) -> None:
        for data in run:
            unit.stage_row(
                Q.invoices_issued,
                data.invoice_number,
                data.invoice_number,
                data.contract,
                data.vs,
                data.ss,
                data.due_on,
                data.amount_minor,
                data.currency,
                data.kind == "topup",
            )
            self._touched(unit, data.contract)

    async def on_invoice_settled(self, unit: Unit, run: Run[ev.InvoiceSettled]) -> None:
        for data in run:
            unit.stage_row(
                Q.invoices_settled, data.invoice_number, data.invoice_number, data.contract
            )
            if data.paid_at is not None:
                self.paid_at[data.contract] = min(
                    data.paid_at, self.paid_at.get(data.contract, data.paid_at)
                )
            self._touched(unit, data.contract)

    async def on_partially_paid(self, unit: Unit, run: Run[ev.InvoicePartiallyPaid]) -> None:
        for data in run:
            unit.stage_row(
                Q.invoices_partially_paid,
                data.invoice_number,
                data.invoice_number,
                data.contract,
                data.remaining_minor,
            )
            self._touched(unit, data.contract)

    async def on_credit_note(self, unit: Unit, run: Run[ev.CreditNoteIssued]) -> None:
        """A credit note: the invoice is open for no more than it now asks; fully credited,
        it is settled, and the contract is decided again (dunning stops, access restored
        if it was the cause). Payments' own event about the invoice follows."""
        for data in run:
            unit.stage_row(
                Q.invoices_credited,
                data.invoice_number,
                data.invoice_number,
                data.contract,
                data.due_minor,
            )
            self._touched(unit, data.contract)

    async def on_reopened(self, unit: Unit, run: Run[ev.InvoiceReopened]) -> None:
        """A reversed payment: the invoice owes again, and dunning goes back to wherever
        the facts now place the contract (deadlines stay anchored on the due date)."""
        for data in run:
            unit.stage(Q.invoice_reopened, data.invoice_number, data.contract, data.remaining_minor)
            self._touched(unit, data.contract)

    async def on_acknowledged(self, unit: Unit, run: Run[ev.NoticeAcknowledged]) -> None:
        for data in run:
            unit.stage(Q.acknowledge, data.contract, data.acknowledged_at, unit.now)
            self._touched(unit, data.contract)

    async def on_timer(self, unit: Unit, contract: str) -> None:
        await self.recompute_many(unit, [contract])

    async def on_timers(self, unit: Unit, contracts: list[str]) -> None:
        await self.recompute_many(unit, contracts)

    async def facts(self, unit: Unit, contract: str) -> tuple[domain.Facts, Policy] | None:
        return (await self.facts_many(unit, [contract])).get(contract)

    async def facts_many(
        self, unit: Unit, contracts: list[str]
    ) -> dict[str, tuple[domain.Facts, Policy]]:
        """Facts of many contracts in one query; contracts dunning does not know yet
        (invoices before the contract) are left out: decided when the contract arrives."""
        found = await unit.conn.fetchrow(Q.facts_of, contracts)
        invoices: dict[str, list[domain.UnpaidInvoice]] = {}
        for contract, *unpaid in found["unpaid"]:
            invoices.setdefault(contract, []).append(domain.UnpaidInvoice(*unpaid))
        done: dict[str, set[str]] = {}
        for contract, request_id in found["done"]:
            done.setdefault(contract, set()).add(request_id)
        out: dict[str, tuple[domain.Facts, Policy]] = {}
        for (
            contract,
            country,
            policy,
            group,
            exempt,
            promised_until,
            unmatched_since,
            stage,
            episode,
            acknowledged_at,
            noticed_at,
        ) in found["contracts"]:
            facts = domain.Facts(
                contract=contract,
                country=country,
                exempt=exempt,
                invoices=tuple(invoices.get(contract, ())),
                stage=stage or "active",
                episode=episode,
                acknowledged_at=acknowledged_at,
                done=frozenset(done.get(contract, ())),
                noticed_at=noticed_at,
                promised_until=promised_until,
                unmatched_since=unmatched_since,
            )
            out[contract] = facts, self.policy(policy, group)
        return out

    async def recompute(self, unit: Unit, contract: str) -> domain.Decision | None:
        return (await self.recompute_many(unit, [contract])).get(contract)

    def tolerance(self, facts: domain.Facts) -> int:
        """The rounding rest below which an invoice counts as paid, in its currency."""
        currency = facts.invoices[0].currency if facts.invoices else ""
        return self.settings.rounding_tolerance.get(currency, 0)

    async def recompute_many(self, unit: Unit, contracts: list[str]) -> dict[str, domain.Decision]:
        """Lock the contracts, run the staged facts, decide each and act: actions recorded
        once (their request id is the key), events emitted, state and timers saved."""
        conn = unit.conn
        contracts = sorted(set(contracts))
        await conn.fetchval(Q.lock_contracts, contracts)
        await unit.drain()
        found = await self.facts_many(unit, contracts)
        decided = {
            contract: (domain.decide(facts, policy, unit.now, self.tolerance(facts)), policy)
            for contract, (facts, policy) in found.items()
        }
        await self._act(unit, decided)
        if decided:
            ds = [d for d, _ in decided.values()]
            # Explained only where there is something to explain (the key of the rest is
            # None); a contract restored is explained below, when its key has changed.
            statuses = {
                c: self.explain(found[c][0], policy, d, unit.now)
                for c, (d, policy) in decided.items()
                if domain.explains(d.stage, d.overdue)
            }
            changed = await conn.fetch(
                Q.save_states,
                list(decided),
                [d.stage for d in ds],
                [d.episode for d in ds],
                [d.acknowledged_at for d in ds],
                [d.why for d in ds],
                [d.next_check_at for d in ds],
                unit.now,
                [domain.status_key(statuses[c]) if c in statuses else None for c in decided],
            )
            # After the actions' events: the customer's explanation follows what was done.
            for row in changed:
                c = row["contract"]
                d, policy = decided[c]
                unit.emit(c, statuses.get(c) or self.explain(found[c][0], policy, d, unit.now))
            await timers.schedule_many(conn, list(decided), [d.next_check_at for d in ds])
        return {c: d for c, (d, _) in decided.items()}

    def explain(
        self, facts: domain.Facts, policy: Policy, decision: domain.Decision, now: datetime
    ) -> ev.DunningStatus:
        """The contract's explanation (``domain.explain``), with our account in its currency
        to pay to: what the zone is sent and ``billing dunning explain`` prints."""
        account = self.settings.bank_accounts.get(decision.currency or "", "")
        return domain.explain(facts, policy, decision, account, now)

    async def _act(self, unit: Unit, decided: dict[str, tuple[domain.Decision, Policy]]) -> None:
        """Emit an event for each action recorded now; a notice carries how far the
        customer may postpone, asked for all the batch's notices in one query."""
        new = await self._record_actions(unit, decided)
        noticed = {c: decided[c][1] for c, a in new if a.kind == "notice"}
        allowance = await self.promise_allowances(unit, noticed)
        for contract, action in new:
            decision, policy = decided[contract]
            days = allowance.get(contract, 0) if action.kind == "notice" else 0
            self._emit(unit, contract, policy, decision, action, days)

    async def _record_actions(
        self, unit: Unit, decided: dict[str, tuple[domain.Decision, Policy]]
    ) -> list[tuple[str, domain.Action]]:
        """Record the decisions' actions; those recorded before (their request id is the
        key: a redelivery, a second timer) were acted on then and are left out."""
        wanted = [(c, a) for c, (d, _) in decided.items() for a in d.actions]
        if not wanted:
            return []
        rows = await unit.conn.fetch(
            Q.insert_actions,
            [c for c, _ in wanted],
            [a.request_id for _, a in wanted],
            [a.kind for _, a in wanted],
            [a.step for _, a in wanted],
            unit.now,
        )
        recorded = {(r["contract"], r["request_id"]) for r in rows}
        return [(c, a) for c, a in wanted if (c, a.request_id) in recorded]

    async def last_customer_promises(
        self, unit: Unit, policies: dict[str, Policy]
    ) -> dict[str, datetime]:
        """When each customer last made an accepted promise, in one query; asked only of
        the contracts whose policy allows promises at all."""
        asking = [c for c, policy in policies.items() if policy.promise.max_days]
        if not asking:
            return {}
        rows = await unit.conn.fetch(Q.last_customer_promises, asking)
        return {r["contract"]: r["made_at"] for r in rows}

    async def promise_allowances(self, unit: Unit, policies: dict[str, Policy]) -> dict[str, int]:
        """How many days each customer may still postpone (``domain.promise_allowance``)."""
        last = await self.last_customer_promises(unit, policies)
        return {
            c: domain.promise_allowance(policy.promise, last.get(c), unit.now)
            for c, policy in policies.items()
        }

    async def on_promise(self, unit: Unit, run: Run[ev.PromiseMade]) -> None:
        for data in run:
            await self.promise(unit, data)

    async def promise(self, unit: Unit, data: ev.PromiseMade) -> None:
        """A promise to pay: the customer's within the policy's limits, an operator's as
        given (``domain.judge_promise``). Either way the suspension (and restriction) waits
        until then; a refused promise is recorded too, with why."""
        await unit.settle()
        await lock_contract(unit, data.contract)
        found = await self.facts(unit, data.contract)
        if found is None:
            raise LookupError(f"promise for unknown contract {data.contract}")
        facts, policy = found
        asking = {data.contract: policy} if data.by == "customer" else {}
        last = await self.last_customer_promises(unit, asking)
        verdict = domain.judge_promise(
            facts,
            policy,
            unit.now,
            self.tolerance(facts),
            by=data.by,
            days=data.days,
            until=data.until,
            last_customer_promise=last.get(data.contract),
        )
        await unit.conn.execute(
            Q.insert_promise,
            data.contract,
            verdict.until,
            data.by,
            data.reason,
            data.address,
            data.user_agent,
            data.made_at,
            verdict.accepted,
            verdict.note,
        )
        log.info(
            "promise",
            contract=data.contract,
            accepted=verdict.accepted,
            until=verdict.until.isoformat(),
        )
        await self.recompute(unit, data.contract)

    async def on_unmatched(self, unit: Unit, run: Run[ev.PaymentUnmatched]) -> None:
        """A payment with the contract's VS that payments could not pair (another currency,
        say): hold suspension until an operator sorts it out (or the hold runs out)."""
        for data in run:
            if data.vs is None or data.amount_minor <= 0:
                continue
            await unit.settle()
            await lock_contract(unit, data.vs)
            if await unit.conn.fetchrow(Q.get_contract, data.vs) is None:
                continue
            await unit.conn.execute(Q.mark_unmatched, data.vs, unit.now, data.bank_tx_id)
            await self.recompute(unit, data.vs)

    async def on_matched(self, unit: Unit, run: Run[ev.PaymentMatched]) -> None:
        """An operator paired a payment by hand: the hold its being unmatched put on the
        contract goes."""
        for data in run:
            if data.rule != "manual":
                continue
            await unit.settle()
            await lock_contract(unit, data.contract)
            await unit.conn.execute(Q.clear_unmatched, data.contract)
            await self.recompute(unit, data.contract)

    async def set_exempt(
        self,
        unit: Unit,
        contract: str,
        reason: str | None,
        operator: str,
        lift_reason: str | None = None,
    ) -> domain.Decision | None:
        """An operator exempts a contract from notice, suspension, restriction and fees
        (a school, a hospital), with a reason; ``reason=None`` lifts it (``lift_reason``:
        why). Nothing is deleted: the exemption in force is marked lifted (a new one
        replaces it), and the action goes into the audit trail in this transaction."""
        await lock_contract(unit, contract)
        if await unit.conn.fetchrow(Q.get_contract, contract) is None:
            raise audit.UnknownContract(contract, "dunning")
        why = lift_reason if reason is None else "replaced by a new exemption"
        before = await unit.conn.fetchrow(Q.lift_exemption, contract, unit.now, operator, why)
        if reason is None and before is None:
            raise NotExempt(f"contract {contract} has no operator's exemption to lift")
        details: dict[str, str] = {}
        if before is not None:
            details = {"previous_reason": before["reason"], "previous_by": before["by"],
                       "previous_since": before["since"].isoformat()}  # fmt: skip
        if reason is not None:
            await unit.conn.execute(Q.set_exemption, contract, reason, operator, unit.now)
        await audit.record(
            unit.conn, unit.now, operator, "exempt" if reason is not None else "lift-exemption",
            contract, details, reason if reason is not None else lift_reason,
        )  # fmt: skip
        return await self.recompute(unit, contract)

    def _emit(
        self,
        unit: Unit,
        contract: str,
        policy: Policy,
        d: domain.Decision,
        a: domain.Action,
        promise_days: int = 0,
    ) -> None:
        """The event of one new action, built by its row in ``EVENTS``; a step overtaken
        by a later one emits nothing and is only logged."""
        if a.kind == "skip":
            log.info("step overtaken, skipped", step=a.step, request_id=a.request_id)
            return
        build = EVENTS[a.kind]
        currency = d.currency or "CZK"
        acting = Acting(
            contract=contract,
            policy=policy,
            decision=d,
            action=a,
            currency=currency,
            account=self.settings.bank_accounts.get(currency, ""),
            promise_days=promise_days,
            now=unit.now,
            paid_at=self.paid_at.get(contract),
        )
        unit.emit(contract, build(acting))


# --- the event of each action kind -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Acting:
    """One new action of a contract's decision, with all its event may carry."""

    contract: str
    policy: Policy
    decision: domain.Decision
    action: domain.Action
    currency: str  # the decision's, CZK when it has none
    account: str  # our bank account in that currency, for the payment instructions
    promise_days: int  # notices: how far the customer may postpone
    now: datetime
    paid_at: datetime | None = None  # restores: when the payment that settled the debt came


def _request(c: Acting) -> dict[str, Any]:
    """What every request to act carries (``ev.DunningRequest``): which step of which
    policy, what is owed and where to pay it."""
    return dict(
        contract=c.contract,
        request_id=c.action.request_id,
        step=c.action.step,
        policy=c.policy.name,
        overdue_minor=c.decision.overdue_minor,
        currency=c.currency,
        invoices=domain.overdue_invoices(c.decision),
        account=c.account,
        decided_at=c.now,
    )


def _reminder(c: Acting) -> BaseModel:
    return ev.ReminderRequested(**_request(c), channels=list(c.action.channels))


def _notice(c: Acting) -> BaseModel:
    return ev.NoticeRequested(**_request(c), promise_max_days=c.promise_days)


def _restrict(c: Acting) -> BaseModel:
    return ev.RestrictRequested(**_request(c))


def _suspend(c: Acting) -> BaseModel:
    return ev.SuspendRequested(**_request(c), acknowledged_at=c.decision.acknowledged_at)


def _fee(c: Acting) -> BaseModel:
    return ev.FeeCharged(
        contract=c.contract,
        request_id=c.action.request_id,
        invoice_number=c.action.invoice or "",
        amount_minor=c.action.amount_minor,
        currency=c.currency,
        step=c.action.step,
        policy=c.policy.name,
    )


def _restore(c: Acting) -> BaseModel:
    return ev.RestoreRequested(
        contract=c.contract,
        request_id=c.action.request_id,
        reason="overdue balance settled",
        decided_at=c.now,
        paid_at=c.paid_at,
    )


# Action kind -> its event's data (its type and topic are the model's). Every kind but
# "skip" has a row (tests/unit/test_dunning_events.py holds them in step).
EVENTS: dict[domain.ActionKind, Callable[[Acting], BaseModel]] = {
    "reminder": _reminder,
    "notice": _notice,
    "restrict": _restrict,
    "suspend": _suspend,
    "fee": _fee,
    "restore": _restore,
}
