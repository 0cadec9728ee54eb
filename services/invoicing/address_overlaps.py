"""Contracts loading refuses overlapping addresses and prefixes: two contracts sharing an
address (or one's address inside the other's prefix) would see each other's notice page.

A load stages every network of the file (``incoming_networks``, a temporary table that
lives as long as the load's transaction), then, before it commits, looks for overlaps
among them and with the networks stored for contracts the file does not replace, and
only then stores the file's networks in their place (``contract_networks``). Networks of
one contract may overlap each other (an address inside the contract's own prefix). The
check runs once at the end, so a file that moves an address from one contract to another
is judged as a whole, in whatever order its records come.
"""

from __future__ import annotations

import asyncpg

from services.invoicing.contracts_file import ContractRecord, ContractsFileError
from services.runtime import networks, sql

Q = sql.load(__file__)
SHOWN = 5  # overlaps named in the error; the rest counted


class AddressOverlaps:
    """``start`` in the load's transaction, ``stage`` each chunk, ``check_and_store`` at
    the end (raises ContractsFileError naming both contracts and networks of each overlap)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def start(self) -> None:
        await self.conn.execute(Q.networks_incoming)

    async def stage(self, records: list[ContractRecord]) -> None:
        await self.conn.copy_records_to_table(
            "incoming_contracts", records=[(r.contract.contract,) for r in records]
        )
        await self.conn.copy_records_to_table(
            "incoming_networks",
            records=[
                (r.contract.contract, net, e, r.where) for r in records for e, net in r.networks
            ],
            columns=["contract", "given", "entry", "place"],
        )

    async def check_and_store(self) -> None:
        await self.conn.execute(Q.networks_lock)
        found: list[str] = []
        for inner in await self.conn.fetch(Q.networks_inside_another):
            for outer in await self.conn.fetch(
                Q.networks_holding, inner["network"], inner["contract"]
            ):
                if inner["place"] is None and outer["place"] is None:
                    continue  # two stored contracts overlapped before this check existed
                found.append(f"{_one(outer)} overlaps {_one(inner)}")
            if len(found) > SHOWN:
                break
        if found:
            more = "; and more" if len(found) > SHOWN else ""
            raise ContractsFileError(
                "overlapping addresses, nothing loaded: " + "; ".join(found[:SHOWN]) + more
            )
        await self.conn.execute(Q.networks_replace)


def _one(row: asyncpg.Record) -> str:
    """A network and whose it is: the file's record, or already stored."""
    what = f"contract {row['contract']}'s"
    if row["entry"] is not None:
        what += f" {row['entry']}"
    where = row["place"] if row["place"] is not None else "already stored"
    return f"{what} {networks.shown(row['network'])} ({where})"
