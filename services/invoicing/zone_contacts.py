"""Contacts customers change in the zone (issue 30, docs/zone.md#contacts). Invoicing owns
the contract data: it applies a ``contacts.change_requested`` to the contract's contacts,
records it in the operators' trail (``billing audit log``, actor ``zone:<e-mail>``), and
publishes ``contract.upserted`` again, so notify sends the next message to the contacts as
they are now and the zone shows them. A change that cannot be applied (the contact changed
meanwhile, the owner removed, an unknown contract) is refused in the trail, nothing else.

Loading the contracts file again (``keep_zone_contacts``) keeps what a customer changed as
long as the file says of the contract's contacts what it said when the customer changed
them; once the operator writes something else there, the file wins, and the trail says
which customer's change it replaced."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from schemas import events as ev
from services.invoicing import domain
from services.invoicing.contracts_file import ContractRecord
from services.runtime import audit, logs, sql
from services.runtime.db import Jsonb
from services.runtime.runs import Run
from services.runtime.unit import Unit

Q = sql.load(__file__, "zone_contacts.sql")
log = logs.get(__name__)


def _json(contacts: Sequence[ev.Contact]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json") for c in contacts]


async def on_contact_change(unit: Unit, run: Run[ev.ContactChangeRequested]) -> None:
    """Each change in order (several of one contract in a run apply one after another),
    after any contracts load under way has committed (``changes_lock``)."""
    await unit.conn.execute(Q.changes_lock)
    for d in run:
        actor = f"zone:{d.requested_by}"
        details: dict[str, Any] = {
            "request_id": d.request_id,
            "action": d.action,
            "before": d.before.model_dump(mode="json") if d.before else None,
            "after": d.after.model_dump(mode="json") if d.after else None,
        }
        row = await unit.conn.fetchrow(Q.contract_for_change, d.contract)
        if row is None:
            await audit.record(
                unit.conn, unit.now, actor, "zone_contacts_refused", d.contract,
                details, reason="no such contract",
            )  # fmt: skip
            continue
        contract = ev.ContractUpserted.model_validate(row["data"])
        try:
            contacts = domain.changed_contacts(contract.contacts, d.action, d.before, d.after)
        except domain.ContactChangeRefused as exc:
            log.warning("zone contact change refused", contract=d.contract, reason=str(exc))
            await audit.record(
                unit.conn, unit.now, actor, "zone_contacts_refused", d.contract,
                details, reason=str(exc),
            )  # fmt: skip
            continue
        changed = ev.ContractUpserted.model_validate(
            {**contract.model_dump(mode="json"), "contacts": _json(contacts)}
        )
        await unit.conn.execute(
            Q.set_contract_data, d.contract, Jsonb(changed.model_dump_json()), unit.now
        )
        await unit.conn.execute(
            Q.put_zone_contacts,
            d.contract,
            _json(contacts),
            _json(contract.contacts),
            unit.now,
            d.requested_by,
        )
        await audit.record(unit.conn, unit.now, actor, "zone_contacts_changed", d.contract, details)
        unit.emit(d.contract, changed)


async def keep_zone_contacts(unit: Unit, records: list[ContractRecord]) -> list[ContractRecord]:
    """A contracts load's records with the contacts customers changed in the zone kept:
    a record whose contacts are what the file said when the customer changed them gets the
    customer's contacts (nothing changed, nothing published). A record whose contacts the
    operator changed in the file since keeps the file's, and the customer's change ends
    there (its row dropped, the trail says so)."""
    await unit.conn.execute(Q.load_lock)
    kept = {
        r["contract"]: r
        for r in await unit.conn.fetch(Q.zone_contacts_of, [r.contract.contract for r in records])
    }
    if not kept:
        return records
    out: list[ContractRecord] = []
    replaced: list[str] = []
    for r in records:
        zone = kept.get(r.contract.contract)
        if zone is None:
            out.append(r)
        elif _json(r.contract.contacts) == zone["file_contacts"]:
            contacts = [ev.Contact.model_validate(c) for c in zone["contacts"]]
            contract = r.contract.model_copy(update={"contacts": contacts})
            out.append(dataclasses.replace(r, contract=contract))
        else:
            replaced.append(r.contract.contract)
            await audit.record(
                unit.conn, unit.now, "contracts file", "zone_contacts_replaced",
                r.contract.contract,
                {"zone_contacts": zone["contacts"], "file_contacts": _json(r.contract.contacts)},
                reason="the contracts file changed the contacts since the customer did",
            )  # fmt: skip
            out.append(r)
    if replaced:
        await unit.conn.execute(Q.drop_zone_contacts, replaced)
    return out
