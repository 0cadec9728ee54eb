"""``billing gear nftables``: keeps a Linux gateway's nftables sets in step with
``network.access``.

1. Subscribe to ``network.access`` (its own consumer group, from the earliest record of a
   new group: the topic is compacted in production, and versions make replays harmless).
2. Rebuild the whole table from provisioning's snapshot (``GET /access``, paged), in one
   ``nft -f`` transaction, so a gateway that was down or missed records starts right.
3. For every batch of records: keep the newest version per contract, skip what is not newer
   than what is applied, and apply the moves in one transaction. If nft refuses (someone
   edited the table by hand), rebuild the whole table from what we know.
4. Report every applied version on ``network.applied`` (``gear.applied.v1``); provisioning
   shows the drift between desired and applied state.
5. Every ``resync_interval`` seconds, rebuild from the snapshot again (catches anything).
6. Every ``traffic_interval`` seconds, read the per-address byte counters (their own table,
   ``nft.traffic_table``) in one ``nft -j`` call and publish them on ``usage.traffic.counters``
   (``traffic.counters.v1``, parts of at most 5,000, keyed by this gear's name), each with
   the contract gear applied the address for. The counted addresses follow the applied
   ones after every change (only those that come or go are touched: the others keep
   counting).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel, ValidationError

from schemas.events import (
    AccessState,
    AddressCounter,
    GearApplied,
    NetworkAccess,
    TrafficCounters,
)
from schemas.registry import PoisonMessage, event_of, parse
from services.gear import nft
from services.gear.settings import GearSettings
from services.runtime import logs
from services.runtime.kafka_client import client_options
from services.runtime.settings import Topics

log = logs.get(__name__)

PART = 5000  # counters per traffic.counters part (the event's limit)


class NftError(RuntimeError):
    pass


@dataclass
class NftGear:
    cfg: nft.GearConfig
    nft_command: list[str]
    applied: dict[str, nft.Entry] = field(default_factory=dict)

    async def run_nft(self, script: str) -> None:
        if not script.strip():
            return
        await self._nft(["-f", "-"], script.encode())

    async def _nft(self, args: list[str], stdin: bytes | None = None) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            *self.nft_command,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin)
        if proc.returncode != 0:
            raise NftError(f"nft exited {proc.returncode}: {err.decode(errors='replace')[:500]}")
        return out

    async def counted(self) -> nft.Counted | None:
        """The counters' table as it is, in one ``nft -j`` call; None: there is none."""
        try:
            out = await self._nft(["-j", "list", "table", "inet", nft.traffic_table(self.cfg)])
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return None
            raise
        return nft.read_counters(json.loads(out))

    async def sync_traffic(self) -> nft.Counted:
        """Count exactly the applied addresses; a missing or unreadable counters' table is
        made anew under a fresh boot id. Returns the counters as read before any change
        (an address that just went keeps its last reading in this report)."""
        want = nft.traffic_elements(self.applied.values())
        counted = await self.counted()
        if counted is None or counted.boot_id is None:
            boot_id = uuid.uuid4().hex
            await self.run_nft(nft.traffic_ruleset(self.cfg, boot_id, want))
            log.info("traffic counters started from zero", boot_id=boot_id, elements=len(want))
            return nft.Counted(boot_id, {el: (0, 0) for el in want})
        await self.run_nft(nft.traffic_changes(self.cfg, counted.counters, want))
        return counted

    async def resync(self, entries: list[nft.Entry]) -> list[nft.Entry]:
        await self.run_nft(nft.ruleset(self.cfg, entries))
        self.applied = {e.contract: e for e in entries}
        return entries

    async def apply(self, accesses: list[nft.Entry]) -> list[nft.Entry]:
        """Apply what is newer than what gear has; return what changed."""
        newest: dict[str, nft.Entry] = {}
        for e in accesses:
            if e.version > newest.get(e.contract, e).version or e.contract not in newest:
                newest[e.contract] = e
        moves = [
            (self.applied.get(c), e)
            for c, e in newest.items()
            if c not in self.applied or e.version > self.applied[c].version
        ]
        if not moves:
            return []
        try:
            await self.run_nft(nft.changes(self.cfg, moves))
        except NftError as exc:
            log.warning("incremental change refused, rebuilding the table", error=str(exc))
            desired = {**self.applied, **{e.contract: e for _, e in moves}}
            await self.resync(list(desired.values()))
            return [e for _, e in moves]
        for _, e in moves:
            self.applied[e.contract] = e
        return [e for _, e in moves]


async def fetch_snapshot(url: str, token: str | None) -> list[nft.Entry]:
    """Provisioning's desired state, paged; ``token``: an operator token (GET /access
    needs one, services/runtime/auth.py)."""
    entries: list[nft.Entry] = []
    after = ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers=headers
    ) as http:
        while True:
            async with http.get(url, params={"after": after, "limit": "5000"}) as resp:
                if resp.status == 401:
                    raise RuntimeError(
                        f"snapshot {url}: HTTP 401, an operator token is needed:"
                        " BILLING_GEAR_SNAPSHOT_TOKEN_FILE"
                    )
                if resp.status != 200:
                    raise RuntimeError(f"snapshot {url}: HTTP {resp.status}")
                page = await resp.json()
            entries += [nft.Entry.of(item) for item in page["items"]]
            after = page.get("next_after")
            if not after:
                return entries


@dataclass
class GearRunner:
    settings: GearSettings
    topics: Topics
    gear: NftGear
    gear_id: str
    snapshot_url: str
    resync_interval: float = 300.0
    traffic_interval: float = 300.0  # 0: no traffic counting
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        items: list[tuple[str, BaseModel]],
        now: datetime,
    ) -> None:
        """(key, data) as events on ``topic``, all sent before any is awaited."""
        futures = []
        for key, data in items:
            event = event_of(f"/gear/{self.gear_id}", key, data, now)
            futures.append(
                await producer.send(
                    topic,
                    event.model_dump_json().encode(),
                    key=key.encode(),
                    headers=[("content-type", b"application/cloudevents+json")],
                )
            )
        await asyncio.gather(*futures)

    async def report(self, producer: AIOKafkaProducer, entries: list[nft.Entry]) -> None:
        now = datetime.now(UTC)
        items: list[tuple[str, BaseModel]] = [
            (
                e.contract,
                GearApplied(
                    gear=self.gear_id,
                    contract=e.contract,
                    version=e.version,
                    state=cast(AccessState, e.state),
                    applied_at=now,
                ),
            )
            for e in entries
        ]
        await self.publish(producer, self.topics.network_applied, items, now)

    async def full_resync(self, producer: AIOKafkaProducer) -> None:
        token = self.settings.secret("gear_snapshot_token")
        entries = await fetch_snapshot(self.snapshot_url, token)
        # A record newer than the snapshot may already be applied: keep the newer one.
        merged = {e.contract: e for e in entries}
        for c, e in self.gear.applied.items():
            if c in merged and e.version > merged[c].version:
                merged[c] = e
        await self.gear.resync(list(merged.values()))
        await self.report(producer, list(merged.values()))
        log.info("table rebuilt from the snapshot", contracts=len(merged))
        if self.traffic_interval > 0:
            await self.gear.sync_traffic()

    async def report_traffic(self, producer: AIOKafkaProducer) -> int:
        """Read the counters once and publish them, in parts of at most 5,000 sharing one
        report id; returns how many counters."""
        counted = await self.gear.sync_traffic()
        now = datetime.now(UTC)
        assert counted.boot_id is not None
        contract_of = nft.traffic_elements(self.gear.applied.values())
        counters = [
            AddressCounter(address=el, contract=contract_of.get(el), rx_bytes=rx, tx_bytes=tx)
            for el, (rx, tx) in counted.counters.items()
        ]
        parts = [counters[i : i + PART] for i in range(0, len(counters), PART)] or [[]]
        report_id = uuid.uuid4().hex
        items: list[tuple[str, BaseModel]] = [
            (
                self.gear_id,
                TrafficCounters(
                    gear=self.gear_id,
                    boot_id=counted.boot_id,
                    report_id=report_id,
                    part=n,
                    parts=len(parts),
                    collected_at=now,
                    counters=part,
                ),
            )
            for n, part in enumerate(parts, start=1)
        ]
        await self.publish(producer, self.topics.traffic_counters, items, now)
        return len(counters)

    async def run(self) -> None:
        kafka = client_options(self.settings)
        consumer = AIOKafkaConsumer(
            self.topics.network_access,
            **kafka,
            group_id=f"gear-nftables-{self.gear_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.session_timeout * 1000),
            heartbeat_interval_ms=int(self.settings.heartbeat_interval * 1000),
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        producer = AIOKafkaProducer(**kafka, acks="all", linger_ms=2)
        await consumer.start()
        await producer.start()
        try:
            await self.full_resync(producer)
            self.ready.set()
            last_resync = last_traffic = asyncio.get_running_loop().time()
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
                entries = []
                for records in batch.values():
                    for r in records:
                        entry = self._entry(r.value, r.topic, r.partition, r.offset)
                        if entry is not None:
                            entries.append(entry)
                if entries:
                    before = {c: (e.v4, e.v6) for c, e in self.gear.applied.items()}
                    changed = await self.gear.apply(entries)
                    if changed:
                        log.info("applied", changes=[f"{e.contract}:{e.state}" for e in changed])
                        await self.report(producer, changed)
                    moved = [e for e in changed if before.get(e.contract) != (e.v4, e.v6)]
                    if moved and self.traffic_interval > 0:
                        await self.gear.sync_traffic()
                if batch:
                    await consumer.commit()
                now = asyncio.get_running_loop().time()
                if now - last_resync > self.resync_interval:
                    try:
                        await self.full_resync(producer)
                    except (OSError, RuntimeError, aiohttp.ClientError) as exc:
                        log.error("periodic resync failed; will retry", error=str(exc))
                    last_resync = now
                if self.traffic_interval > 0 and now - last_traffic >= self.traffic_interval:
                    last_traffic = now
                    try:
                        n = await self.report_traffic(producer)
                        log.debug("traffic counters reported", counters=n)
                    except NftError as exc:
                        log.error("reading the traffic counters failed; will retry", error=str(exc))
        finally:
            await consumer.stop()
            await producer.stop()

    def _entry(
        self, raw: bytes | None, topic: str, partition: int, offset: int
    ) -> nft.Entry | None:
        try:
            _, data = parse(raw)
            if not isinstance(data, NetworkAccess):
                return None
            return nft.Entry.of(data.model_dump(mode="json"))
        except (PoisonMessage, ValidationError, ValueError) as exc:
            log.error("skipping a record gear cannot read", topic=topic, partition=partition,
                      offset=offset, error=str(exc))  # fmt: skip
            return None


def default_gear_id() -> str:
    return socket.gethostname().split(".")[0] or "gateway"


def nft_command(text: str) -> list[str]:
    parts = shlex.split(text)
    if not parts:
        raise nft.GearConfigError("nft command: empty")
    return parts


def config_from(settings: GearSettings, **overrides: Any) -> nft.GearConfig:
    notice4 = overrides.get("notice4") or settings.gear_notice4
    notice6 = overrides.get("notice6") or settings.gear_notice6
    return nft.GearConfig(
        table=overrides.get("table") or settings.gear_table,
        notice4=nft.Endpoint.parse(notice4, "notice (IPv4)") if notice4 else None,
        notice6=nft.Endpoint.parse(notice6, "notice (IPv6)") if notice6 else None,
        garden=tuple(overrides.get("garden") or settings.gear_walled_garden),
        restrict_rate=overrides.get("restrict_rate") or settings.gear_restrict_rate,
    )
