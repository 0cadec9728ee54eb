"""Traffic per address from gear's cumulative counters. Pure: readings in, deltas out.

The rules of one (gear, address) counter, given its last reading (docs/usage.md#traffic):

- no reading yet: the whole reading counts. A counter starts at zero when gear creates it
  (a new address, a new table), so its first report is the traffic since then.
- a reading not newer than the last (``collected_at`` equal or older: a redelivered or
  reordered report): nothing, and the last reading stays. Never counted twice.
- the same ``boot_id`` and neither counter lower: the differences.
- a new ``boot_id`` (the gear's counters restarted from zero), or either counter lower
  under the same boot id (the element was deleted and added again): a reset; the new
  values are the traffic since the reset. Never negative.

A delta is counted in the 5-minute bucket holding its reading's ``collected_at``, and in
that bucket's hour and day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BUCKET = timedelta(minutes=5)
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Reading:
    boot_id: str
    collected_at: datetime
    rx: int
    tx: int


@dataclass(frozen=True, slots=True)
class Counted:
    """A reading of one address that counts: its traffic since the reading before."""

    gear: str
    address: str
    contract: str | None
    collected_at: datetime
    rx: int
    tx: int
    reset: bool


@dataclass(frozen=True, slots=True)
class Report:
    """One address's reading in a gear's report, in the order the gear sent them."""

    gear: str
    address: str
    contract: str | None
    reading: Reading


def delta(last: Reading | None, new: Reading) -> tuple[int, int, bool] | None:
    """(rx, tx, reset) of ``new`` after ``last``; None: ``new`` is not newer."""
    if last is None:
        return new.rx, new.tx, False
    if new.collected_at <= last.collected_at:
        return None
    if new.boot_id != last.boot_id or new.rx < last.rx or new.tx < last.tx:
        return new.rx, new.tx, True
    return new.rx - last.rx, new.tx - last.tx, False


def ingest(
    last: dict[tuple[str, str], Reading], reports: Iterable[Report]
) -> tuple[dict[tuple[str, str], Reading], list[Counted]]:
    """Fold ``reports`` (in order) into the last readings: the readings now kept (only the
    keys that changed) and what counts. ``last`` is not changed."""
    kept: dict[tuple[str, str], Reading] = {}
    counted: list[Counted] = []
    for r in reports:
        key = (r.gear, r.address)
        before = kept.get(key) or last.get(key)
        d = delta(before, r.reading)
        if d is None:
            continue
        kept[key] = r.reading
        rx, tx, reset = d
        counted.append(
            Counted(r.gear, r.address, r.contract, r.reading.collected_at, rx, tx, reset)
        )
    return kept, counted


def bucket_of(at: datetime) -> datetime:
    """The start of the 5-minute bucket holding ``at``, in UTC."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def closes_at(hour: datetime, report_interval: timedelta) -> datetime:
    """When an hour is closed: its end plus one report interval (the last report that
    can fall in it has arrived by then, unless late)."""
    return hour + HOUR + report_interval


@dataclass(frozen=True, slots=True)
class Buckets:
    """Deltas summed per (contract, address, 5-minute bucket): one row each."""

    rows: dict[tuple[str, str, datetime], tuple[int, int]]

    @property
    def hours(self) -> set[tuple[str, datetime]]:
        """The (contract, hour) pairs traffic was added to."""
        return {(c, hour_of(b)) for c, _, b in self.rows}


def buckets(counted: Iterable[Counted], contract_of: dict[str, str]) -> Buckets:
    """Sum the deltas per bucket. An address's contract is the one gear named, else the
    one ``contract_of`` names, else ``""`` (nobody's: kept, shown to no customer)."""
    rows: dict[tuple[str, str, datetime], tuple[int, int]] = {}
    for c in counted:
        if c.rx == 0 and c.tx == 0:
            continue
        contract = c.contract or contract_of.get(c.address, "")
        key = (contract, c.address, bucket_of(c.collected_at))
        rx, tx = rows.get(key, (0, 0))
        rows[key] = (rx + c.rx, tx + c.tx)
    return Buckets(rows)
