"""Provisioning handlers: keep access state per contract and publish it for network gear."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel

from schemas import events as ev
from services.provisioning import domain
from services.runtime import logs, networks, sql
from services.runtime.runs import Run
from services.runtime.unit import Unit

Q = sql.load(__file__)
log = logs.get(__name__)

# Dunning's requests and what each asks of a contract's access.
Request = ev.NoticeRequested | ev.SuspendRequested | ev.RestrictRequested | ev.RestoreRequested
REQUESTS: dict[type[BaseModel], domain.Request] = {
    ev.NoticeRequested: "notice",
    ev.SuspendRequested: "suspend",
    ev.RestrictRequested: "restrict",
    ev.RestoreRequested: "restore",
}


def _networks(contract: str, subscribers: dict[str, Any]) -> list[str]:
    """A contract's addresses and prefixes for the notice page's lookup. The contracts
    loader refuses bad ones; one that still arrives (another producer) is logged and left
    out rather than holding up the contract's access state."""
    found = []
    for field in networks.FIELDS:
        for i, value in enumerate(subscribers.get(field) or ()):
            try:
                found.append(networks.parse(field, i, value))
            except networks.NetworkError as exc:
                log.warning("subscriber address ignored", contract=contract, error=str(exc))
    return found


class Provisioning:
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
            contract,
            ev.NetworkAccess(
                contract=contract,
                subscribers=ev.Subscribers.model_validate(subscribers),
                state=cast(ev.AccessState, state),  # a strict model's init is typed so
                reason=reason,
                version=version,
                effective_at=at,
            ),
        )

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        """A run of contract events at once: one read, one upsert, one version bump for the
        contracts whose addresses are new or changed (gear keys its rules by address, so a
        new address set is a new state to publish)."""
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
            found = [(c, n) for c in changed for n in _networks(c, subs[c])]
            await unit.conn.execute(
                Q.replace_networks, changed, [c for c, _ in found], [n for _, n in found]
            )
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
        return bool(await self.apply(unit, [(contract, request)]))

    async def apply(
        self, unit: Unit, requests: list[tuple[str, domain.Request]]
    ) -> dict[str, domain.Access]:
        """Requests in order, set-based: one locking read of every contract named, the
        requests folded in order (``domain.apply_requests``: each change a new version,
        published), one update. The same states, versions and events as applying them one
        at a time. Returns the contracts changed, with their access now."""
        contracts = sorted({c for c, _ in requests})  # locks taken in one order
        rows = {r["contract"]: r for r in await unit.conn.fetch(Q.get_accesses, contracts)}
        current = {c: domain.Access(r["state"], r["reason"], r["version"]) for c, r in rows.items()}
        final, changes = domain.apply_requests(current, requests)
        for contract, access in changes:
            self._publish(
                unit, contract, access.state, access.reason, access.version,
                rows[contract]["subscribers"], unit.now,
            )  # fmt: skip
        moved = [c for c in contracts if c in final and final[c] != current[c]]
        if moved:
            await unit.conn.execute(
                Q.set_accesses,
                moved,
                [final[c].state for c in moved],
                [final[c].reason for c in moved],
                [final[c].version for c in moved],
                unit.now,
            )
        return {c: final[c] for c in moved}

    async def on_request(self, unit: Unit, run: Run[Request]) -> None:
        """Dunning's requests (notice, suspend, restrict, restore): a run of them at once.
        Restoring takes the notice off the screen; the last notice request of a contract
        in the run is the one on screen."""
        requests: list[tuple[str, domain.Request]] = []
        notices: dict[str, ev.NoticeRequested | None] = {}  # None: taken off the screen
        for d in run:
            requests.append((d.contract, REQUESTS[type(d)]))
            if isinstance(d, ev.NoticeRequested):
                notices[d.contract] = d
            elif isinstance(d, ev.RestoreRequested):
                notices[d.contract] = None
        shown = [d for d in notices.values() if d is not None]
        if shown:
            await unit.conn.execute(
                Q.put_notices,
                [d.contract for d in shown],
                [d.request_id for d in shown],
                [d.model_dump_json() for d in shown],
                unit.now,
            )
        dropped = [c for c, d in notices.items() if d is None]
        if dropped:
            await unit.conn.execute(Q.drop_notices, dropped)
        moved = await self.apply(unit, requests)
        # the reconnect time's start, kept with the version the restore made (where it
        # made one: a contract already active has nothing for gear to apply)
        paid = {d.contract: d.paid_at for d in run if isinstance(d, ev.RestoreRequested)}
        paid = {c: at for c, at in paid.items() if at is not None and c in moved}
        if paid:
            await unit.conn.execute(Q.mark_restores, list(paid), list(paid.values()))

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
            contract,
            ev.NoticeAcknowledged(
                contract=contract, acknowledged_at=unit.now, address=address, user_agent=user_agent
            ),
        )
        await self.change(unit, contract, "acknowledged")
        return True
