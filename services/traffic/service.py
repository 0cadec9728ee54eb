"""Traffic handlers: gear's counter reports into buckets per contract and address; closed
hours published for the zone (``traffic.hour.v1``); old buckets deleted on a timer.

All three granularities (5 minutes, hours, days) are written in the transaction that
counts a report, not rolled up later on a timer: a report is three set-based upserts of
the same rows (one statement each), the sums of the three agree at every commit, and the
CLI and the hour's publication read them with no roll-up lag to explain. The bench
measures what that costs (docs/performance.md).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from prometheus_client import Counter

from schemas import events as ev
from services.runtime import logs, sql
from services.runtime.runs import Run
from services.runtime.timers import schedule
from services.runtime.unit import Unit, columns
from services.traffic import domain
from services.traffic.settings import TrafficSettings

Q = sql.load(__file__)
log = logs.get(__name__)

REPORTS = Counter(
    "billing_traffic_reports_total", "Parts of gear counter reports counted", ["gear"]
)
RESETS = Counter(
    "billing_traffic_counter_resets_total",
    "Counters found restarted from zero (a new boot id or a lower counter)",
    ["gear"],
)
STALE = Counter(
    "billing_traffic_stale_readings_total",
    "Readings not newer than the last of their address (redelivered, reordered): not counted",
    ["gear"],
)
HOURS = Counter("billing_traffic_hour_events_total", "traffic.hour.v1 published", ["revised"])

RETENTION = "retention"
HOUR_PREFIX = "hour:"


class Traffic:
    def __init__(self, settings: TrafficSettings) -> None:
        self.settings = settings
        self.interval = timedelta(seconds=settings.traffic_report_interval)

    async def on_counters(self, unit: Unit, run: Run[ev.TrafficCounters]) -> None:
        """A run of counter reports (parts), in order: one read of the last readings, the
        domain's fold, one write each of readings, 5-minute buckets, hours, days."""
        reports = [
            domain.Report(
                d.gear, c.address, c.contract,
                domain.Reading(d.boot_id, d.collected_at, c.rx_bytes, c.tx_bytes),
            )
            for d in run
            for c in d.counters
        ]  # fmt: skip
        keys = list(dict.fromkeys((r.gear, r.address) for r in reports))
        last = {
            (r["gear"], r["address"]): domain.Reading(
                r["boot_id"], r["collected_at"], r["rx_bytes"], r["tx_bytes"]
            )
            for r in await unit.conn.fetch(
                Q.last_readings, [g for g, _ in keys], [a for _, a in keys]
            )
        }
        kept, counted = domain.ingest(last, reports)
        for d in run:
            REPORTS.labels(d.gear).inc()
        for gear in {r.gear for r in reports}:
            n = sum(1 for c in counted if c.reset and c.gear == gear)
            if n:
                RESETS.labels(gear).inc(n)
            stale = sum(1 for r in reports if r.gear == gear) - sum(
                1 for c in counted if c.gear == gear
            )
            if stale:
                STALE.labels(gear).inc(stale)
        if kept:
            await unit.conn.execute(
                Q.put_readings,
                *columns(
                    [(g, a, r.boot_id, r.collected_at, r.rx, r.tx) for (g, a), r in kept.items()]
                ),
            )
        unattributed = sorted({c.address for c in counted if c.contract is None})
        contract_of: dict[str, str] = {}
        if unattributed:
            owners = await unit.conn.fetch(Q.contracts_of, unattributed)
            contract_of = {r["address"]: r["contract"] for r in owners}
        found = domain.buckets(counted, contract_of)
        if not found.rows:
            return
        rows = columns([(c, a, b, rx, tx) for (c, a, b), (rx, tx) in found.rows.items()])
        for query in (Q.add_5min, Q.add_hours, Q.add_days):
            await unit.conn.execute(query, *rows)
        hours = sorted(found.hours)
        await unit.conn.execute(Q.touch_hours, [c for c, _ in hours], [h for _, h in hours])
        for hour in sorted({h for _, h in hours}):
            # a closed hour (a late report) is published again at once
            due = max(domain.closes_at(hour, self.interval), unit.now)
            await schedule(unit.conn, f"{HOUR_PREFIX}{hour.isoformat()}", due)
        await unit.conn.execute(Q.schedule_if_absent, RETENTION, unit.now)

    async def on_contract(self, unit: Unit, run: Run[ev.ContractUpserted]) -> None:
        """The networks of each contract's subscribers, for counters without a contract."""
        last = {d.contract: d for d in run}
        contracts = list(last)
        await unit.conn.execute(Q.forget_networks, contracts)
        await unit.conn.execute(
            Q.put_networks,
            contracts,
            [json.dumps(d.subscribers.model_dump(mode="json")) for d in last.values()],
        )

    async def on_timer(self, unit: Unit, key: str) -> None:
        if key == RETENTION:
            await self.prune(unit)
        elif key.startswith(HOUR_PREFIX):
            await self.close_hour(unit, datetime.fromisoformat(key[len(HOUR_PREFIX) :]))
        else:
            log.warning("unknown timer dropped", key=key)

    async def close_hour(self, unit: Unit, hour: datetime) -> None:
        """Publish the hour of each contract whose traffic in it changed since it was last
        published, whole, with the next revision."""
        revisions = {
            r["contract"]: r["revision"] for r in await unit.conn.fetch(Q.close_hour, hour)
        }
        if not revisions:
            return
        addresses: dict[str, list[ev.AddressTraffic]] = {c: [] for c in revisions}
        for r in await unit.conn.fetch(Q.hour_rows, hour, list(revisions)):
            addresses[r["contract"]].append(
                ev.AddressTraffic(
                    address=r["address"], rx_bytes=r["rx_bytes"], tx_bytes=r["tx_bytes"]
                )
            )
        for contract, revision in sorted(revisions.items()):
            unit.emit(
                contract,
                ev.TrafficHour(
                    contract=contract, hour=hour, addresses=addresses[contract], revision=revision
                ),
            )
            HOURS.labels("true" if revision > 1 else "false").inc()

    async def prune(self, unit: Unit) -> None:
        """Delete 5-minute buckets and hours past their retention; schedule the next round."""
        s = self.settings
        await unit.conn.execute(Q.prune_5min, unit.now - timedelta(days=s.traffic_keep_5min_days))
        await unit.conn.execute(Q.prune_hours, unit.now - timedelta(days=s.traffic_keep_hour_days))
        await schedule(
            unit.conn, RETENTION, unit.now + timedelta(seconds=s.traffic_retention_interval)
        )
