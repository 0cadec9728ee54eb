"""Dunning handlers: record facts, then recompute the contract's decision and act on it."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.dunning import domain
from services.dunning.policy import Policy, load_all
from services.runtime import audit, logs, sql, timers
from services.runtime.settings import Settings, Topics
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
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
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
        await self.recompute_many(unit, contracts)

    async def on_contract(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.ContractUpserted)
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

    async def on_invoice_issued(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoiceIssued)
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
        )
        self._touched(unit, data.contract)

    async def on_invoice_settled(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoiceSettled)
        unit.stage_row(Q.invoices_settled, data.invoice_number, data.invoice_number, data.contract)
        self._touched(unit, data.contract)

    async def on_partially_paid(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.InvoicePartiallyPaid)
        unit.stage_row(
            Q.invoices_partially_paid,
            data.invoice_number,
            data.invoice_number,
            data.contract,
            data.remaining_minor,
        )
        self._touched(unit, data.contract)

    async def on_reopened(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        """A reversed payment: the invoice owes again, and dunning goes back to wherever
        the facts now place the contract (deadlines stay anchored on the due date)."""
        assert isinstance(data, ev.InvoiceReopened)
        unit.stage(Q.invoice_reopened, data.invoice_number, data.contract, data.remaining_minor)
        self._touched(unit, data.contract)

    async def on_acknowledged(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.NoticeAcknowledged)
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

    async def recompute_many(self, unit: Unit, contracts: list[str]) -> dict[str, domain.Decision]:
        """Lock the contracts, run the staged facts, decide each and act: actions recorded
        once (their request id is the key), events emitted, state and timers saved."""
        conn = unit.conn
        contracts = sorted(set(contracts))
        await conn.fetchval(Q.lock_contracts, contracts)
        await unit.drain()
        found = await self.facts_many(unit, contracts)
        decided: dict[str, tuple[domain.Decision, Policy]] = {}
        for contract, (facts, policy) in found.items():
            tolerance = self.settings.rounding_tolerance.get(
                facts.invoices[0].currency if facts.invoices else "", 0
            )
            decided[contract] = domain.decide(facts, policy, unit.now, tolerance), policy
        wanted = [(c, a) for c, (d, _) in decided.items() for a in d.actions]
        if wanted:
            new = {
                (r["contract"], r["request_id"])
                for r in await conn.fetch(
                    Q.insert_actions,
                    [c for c, _ in wanted],
                    [a.request_id for _, a in wanted],
                    [a.kind for _, a in wanted],
                    [a.step for _, a in wanted],
                    unit.now,
                )
            }
            noticed = [c for c, a in wanted if a.kind == "notice" and (c, a.request_id) in new]
            allowance = await self.promise_allowances(unit, {c: decided[c][1] for c in noticed})
            for contract, action in wanted:
                if (contract, action.request_id) in new:
                    decision, policy = decided[contract]
                    days = allowance.get(contract, 0) if action.kind == "notice" else 0
                    self._emit(unit, contract, policy, decision, action, days)
        if decided:
            ds = [d for d, _ in decided.values()]
            await conn.execute(
                Q.save_states,
                list(decided),
                [d.stage for d in ds],
                [d.episode for d in ds],
                [d.acknowledged_at for d in ds],
                [d.why for d in ds],
                [d.next_check_at for d in ds],
                unit.now,
            )
            await timers.schedule_many(conn, list(decided), [d.next_check_at for d in ds])
        return {c: d for c, (d, _) in decided.items()}

    async def promise_allowances(self, unit: Unit, policies: dict[str, Policy]) -> dict[str, int]:
        """How many days each customer may still postpone, in one query: 0 when the
        policy allows no promise, or one was made within ``once_per_days``."""
        asking = [c for c, policy in policies.items() if policy.promise.max_days]
        last = (
            {
                r["contract"]: r["made_at"]
                for r in await unit.conn.fetch(Q.last_customer_promises, asking)
            }
            if asking
            else {}
        )
        out = {}
        for c, policy in policies.items():
            made = last.get(c)
            recent = made is not None and unit.now - made < timedelta(
                days=policy.promise.once_per_days
            )
            out[c] = 0 if recent or not policy.promise.max_days else policy.promise.max_days
        return out

    async def on_promise(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        """A promise to pay: the customer's within the policy's limits, an operator's as
        given. Either way the suspension (and restriction) waits until then."""
        assert isinstance(data, ev.PromiseMade)
        await unit.settle()
        await lock_contract(unit, data.contract)
        found = await self.facts(unit, data.contract)
        if found is None:
            raise LookupError(f"promise for unknown contract {data.contract}")
        facts, policy = found
        # The postponement counts from when the suspension (or restriction) would come.
        tolerance = self.settings.rounding_tolerance.get(
            facts.invoices[0].currency if facts.invoices else "", 0
        )
        planned = domain.decide(facts, policy, unit.now, tolerance).upcoming
        base = next((u.at for u in planned if u.action in ("suspend", "restrict")), unit.now)
        base = max(base, facts.promised_until or base)
        accepted, note = True, ""
        if data.by == "customer":
            allowed = (await self.promise_allowances(unit, {data.contract: policy}))[data.contract]
            days = min(data.days or allowed, allowed)
            until = base + timedelta(days=days)
            if not allowed:
                accepted, note = False, "no promise allowed now by the policy"
            elif facts.stage not in ("notice", "suspended", "restricted"):
                accepted, note = False, "nothing to postpone"
            elif (data.days or 0) > allowed:
                note = f"shortened to the policy's {allowed} days"
        else:
            until = data.until or base
        await unit.conn.execute(
            Q.insert_promise,
            data.contract,
            until,
            data.by,
            data.reason,
            data.address,
            data.user_agent,
            data.made_at,
            accepted,
            note,
        )
        log.info("promise", contract=data.contract, accepted=accepted, until=until.isoformat())
        await self.recompute(unit, data.contract)

    async def on_unmatched(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        """A payment with the contract's VS that payments could not pair (another currency,
        say): hold suspension until an operator sorts it out (or the hold runs out)."""
        assert isinstance(data, ev.PaymentUnmatched)
        if data.vs is None or data.amount_minor <= 0:
            return
        await unit.settle()
        await lock_contract(unit, data.vs)
        if await unit.conn.fetchrow(Q.get_contract, data.vs) is None:
            return
        await unit.conn.execute(Q.mark_unmatched, data.vs, unit.now, data.bank_tx_id)
        await self.recompute(unit, data.vs)

    async def on_matched(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.PaymentMatched)
        if data.rule != "manual":
            return
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
        if a.kind == "skip":
            log.info("step overtaken, skipped", step=a.step, request_id=a.request_id)
            return
        if a.kind == "fee":
            unit.emit(
                self.topics.dunning,
                "fee.charged.v1",
                contract,
                ev.FeeCharged(
                    contract=contract,
                    request_id=a.request_id,
                    invoice_number=a.invoice or "",
                    amount_minor=a.amount_minor,
                    currency=d.currency or "CZK",
                    step=a.step,
                    policy=policy.name,
                ),
            )
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
                self.topics.dunning,
                "notice.requested.v1",
                contract,
                ev.NoticeRequested(**common, promise_max_days=promise_days),
            )
        elif a.kind == "restrict":
            unit.emit(
                self.topics.dunning,
                "restrict.requested.v1",
                contract,
                ev.RestrictRequested(**common),
            )
        elif a.kind == "suspend":
            unit.emit(
                self.topics.dunning,
                "suspend.requested.v1",
                contract,
                ev.SuspendRequested(**common, acknowledged_at=d.acknowledged_at),
            )
