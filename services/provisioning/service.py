"""Provisioning handlers: keep access state per contract and publish it for network gear."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from schemas import events as ev
from schemas.envelope import CloudEvent
from services.provisioning import domain
from services.runtime import sql
from services.runtime.settings import Topics
from services.runtime.unit import Unit

Q = sql.load(__file__)


class Provisioning:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    def _publish(
        self,
        unit: Unit,
        contract: str,
        state: str,
        reason: str,
        version: int,
        subscribers: dict[str, Any],
        at: datetime,
    ) -> None:
        unit.emit(
            self.topics.network_access,
            "network.access.v1",
            contract,
            ev.NetworkAccess(
                contract=contract,
                subscribers=ev.Subscribers.model_validate(subscribers),
                state=state,
                reason=reason,
                version=version,
                effective_at=at,
            ),
        )

    async def on_contract(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        """A run of contract events at once: one read, one upsert, one version bump for the
        contracts whose addresses are new or changed (gear keys its rules by address, so a
        new address set is a new state to publish)."""
        assert isinstance(data, ev.ContractUpserted)
        run = unit.run_of(data, "provisioning.contracts")
        if run is None:
            return
        last = {d.contract: d for d in run}  # a repeat in the run: the last wins
        contracts = list(last)
        subs = {c: d.subscribers.model_dump(mode="json") for c, d in last.items()}
        before = {
            r["contract"]: r["subscribers"]
            for r in await unit.conn.fetch(Q.get_subscribers, contracts)
        }
        await unit.conn.execute(
            Q.upsert_subscribers,
            contracts,
            [d.customer_name for d in last.values()],
            [d.language for d in last.values()],
            [json.dumps(subs[c]) for c in contracts],
            unit.now,
        )
        changed = [c for c in contracts if before.get(c) != subs[c]]
        if changed:
            rows = {
                r["contract"]: r for r in await unit.conn.fetch(Q.bump_versions, changed, unit.now)
            }
            for c in changed:
                row = rows[c]
                self._publish(
                    unit, c, row["state"], row["reason"], row["version"], row["subscribers"],
                    unit.now,
                )  # fmt: skip

    async def change(self, unit: Unit, contract: str, request: domain.Request) -> bool:
        row = await unit.conn.fetchrow(Q.get_access, contract)
        if row is None:
            return False
        change = domain.transition(row["state"], request)
        if change is None:
            return False
        updated = await unit.conn.fetchrow(
            Q.set_access, contract, change.state, change.reason, unit.now
        )
        self._publish(
            unit,
            contract,
            change.state,
            change.reason,
            updated["version"],
            updated["subscribers"],
            unit.now,
        )
        return True

    async def on_notice(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.NoticeRequested)
        await unit.conn.execute(
            Q.put_notice, data.contract, data.request_id, data.model_dump(mode="json"), unit.now
        )
        await self.change(unit, data.contract, "notice")

    async def on_restrict(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.RestrictRequested)
        await self.change(unit, data.contract, "restrict")

    async def promise(
        self,
        unit: Unit,
        contract: str,
        request_id: str,
        days: int,
        address: str,
        user_agent: str | None,
    ) -> bool:
        """The customer promises to pay within ``days`` more days: tell dunning (which
        checks the policy's limits). Promising is reading, so it confirms the notice too."""
        if await unit.conn.fetchval(Q.record_promise, contract, days) is None:
            return False  # one promise per notice
        await self.acknowledge(unit, contract, request_id, address, user_agent)
        unit.emit(
            self.topics.notices,
            "promise.made.v1",
            contract,
            ev.PromiseMade(
                contract=contract,
                days=days,
                by="customer",
                address=address,
                user_agent=user_agent,
                made_at=unit.now,
            ),
        )
        return True

    async def on_suspend(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.SuspendRequested)
        await self.change(unit, data.contract, "suspend")

    async def on_restore(self, unit: Unit, event: CloudEvent, data: BaseModel) -> None:
        assert isinstance(data, ev.RestoreRequested)
        await unit.conn.execute(Q.drop_notice, data.contract)
        await self.change(unit, data.contract, "restore")

    async def acknowledge(
        self, unit: Unit, contract: str, request_id: str, address: str, user_agent: str | None
    ) -> bool:
        """The customer confirmed the notice: keep the evidence, tell dunning, lift the
        redirect. Confirming twice records nothing new."""
        new = await unit.conn.fetchval(
            Q.record_ack, contract, request_id, unit.now, address, user_agent
        )
        if new is None:
            return False
        unit.emit(
            self.topics.notices,
            "notice.acknowledged.v1",
            contract,
            ev.NoticeAcknowledged(
                contract=contract, acknowledged_at=unit.now, address=address, user_agent=user_agent
            ),
        )
        await self.change(unit, contract, "acknowledged")
        return True
