"""The operators' audit trail, and the error of an operator naming an unknown contract.

Every state-changing operator command (CLI or HTTP) calls ``record`` on the connection of
the transaction that makes the change, so the action and its row commit together or not
at all. The table (``operator_actions``, runtime migration 003) is in every service schema
and refuses UPDATE, DELETE and TRUNCATE: the trail only grows. ``trail`` reads it back
across schemas for ``billing audit log``.

Who acted: ``--operator``, else ``$BILLING_OPERATOR``, else the user running the command.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.contacts import plain_text
from services.runtime import sql
from services.runtime.errors import NotFound

Q = sql.load(__file__)
OPERATOR_ENV = "BILLING_OPERATOR"
OPERATOR_HELP = f"who acts (default: ${OPERATOR_ENV}, else the OS user); in the audit trail"


class UnknownContract(NotFound):
    """An operator named a contract the service does not know."""

    def __init__(self, contract: str, service: str | None = None) -> None:
        self.contract = contract
        known = f" known to {service}" if service else ""
        super().__init__(f"no contract {contract}{known}")


def operator_name(given: str | None = None) -> str:
    """Who is acting: ``given`` (``--operator``), else ``$BILLING_OPERATOR``, else the OS
    user. A name with a control character is refused (it would forge trail lines)."""
    for name in (given, os.environ.get(OPERATOR_ENV)):
        if name and name.strip():
            try:
                return plain_text(name.strip())
            except ValueError as exc:
                raise ValueError(f"operator name {name!r}: {exc}") from None
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return f"uid {os.getuid()}"


async def record(
    conn: asyncpg.Connection,
    at: datetime,
    operator: str,
    action: str,
    contract: str | None,
    details: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """One action into the trail of ``conn``'s schema, inside the action's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError(f"operator action {action!r} recorded outside its transaction")
    await conn.execute(Q.record_action, at, operator, action, contract, dict(details or {}), reason)


@dataclass(frozen=True)
class Entry:
    service: str
    id: int
    at: datetime
    operator: str
    action: str
    contract: str | None
    details: dict[str, Any]
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "id": self.id,
            "at": self.at.isoformat(),
            "operator": self.operator,
            "action": self.action,
            "contract": self.contract,
            "details": self.details,
            "reason": self.reason,
        }


async def trail(
    conn: asyncpg.Connection, schemas: Iterable[str], contract: str | None, limit: int = 1000
) -> list[Entry]:
    """The latest ``limit`` actions of each schema (on ``contract``, or all), oldest first.
    Changes the connection's search_path."""
    entries: list[Entry] = []
    for (schema,) in await conn.fetch(Q.schemas_with_trail, list(schemas)):
        await conn.execute(Q.use_schema, schema)
        entries.extend(
            Entry(service=schema, **dict(r)) for r in await conn.fetch(Q.trail, contract, limit)
        )
    entries.sort(key=lambda e: (e.at, e.service, e.id))
    return entries[-limit:]
