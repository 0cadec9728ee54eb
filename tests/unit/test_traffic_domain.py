"""Traffic from cumulative counters (services/traffic/domain.py) and the gear's counters'
table (services/gear/nft.py), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gear import nft
from services.traffic import domain
from services.traffic.domain import Reading, Report

T0 = datetime(2026, 12, 5, 10, 2, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("last", "new", "expected"),
    [
        # first report of an address: the gear created its counter at zero, so all counts
        (None, Reading("b1", at(0), 500, 70), (500, 70, False)),
        # same boot, higher: the difference
        (Reading("b1", at(0), 500, 70), Reading("b1", at(5), 800, 75), (300, 5, False)),
        # same boot, unchanged: nothing new (but a reading)
        (Reading("b1", at(0), 500, 70), Reading("b1", at(5), 500, 70), (0, 0, False)),
        # gear restart (new boot id): the new values are the traffic since the reset,
        # even when higher than the last (never a difference across boots)
        (Reading("b1", at(0), 500, 70), Reading("b2", at(5), 900, 10), (900, 10, True)),
        # same boot, a lower counter (element deleted and added again): a reset, not negative
        (Reading("b1", at(0), 500, 70), Reading("b1", at(5), 40, 90), (40, 90, True)),
        (Reading("b1", at(0), 500, 70), Reading("b1", at(5), 600, 3), (600, 3, True)),
        # redelivered (same time) or reordered (older): nothing, never doubled
        (Reading("b1", at(5), 800, 75), Reading("b1", at(5), 800, 75), None),
        (Reading("b1", at(5), 800, 75), Reading("b1", at(0), 500, 70), None),
        # an older report of another boot is still older
        (Reading("b2", at(5), 10, 10), Reading("b1", at(0), 500, 70), None),
    ],
)
def test_delta_rules(
    last: Reading | None, new: Reading, expected: tuple[int, int, bool] | None
) -> None:
    assert domain.delta(last, new) == expected


def test_ingest_folds_reports_in_order_and_sums_per_bucket() -> None:
    gear = "gw1"
    reports = [
        Report(gear, "10.0.0.2", "1001", Reading("b1", at(0), 100, 10)),
        Report(gear, "10.0.0.2", "1001", Reading("b1", at(5), 250, 30)),
        Report(gear, "10.0.0.2", "1001", Reading("b1", at(5), 250, 30)),  # repeated part
        Report(gear, "10.0.0.2", "1001", Reading("b2", at(6), 7, 1)),  # gear restarted
        Report(gear, "10.0.0.3", None, Reading("b1", at(5), 5, 5)),
    ]
    last = {(gear, "10.0.0.2"): Reading("b1", at(-5), 40, 0)}
    kept, counted = domain.ingest(last, reports)
    assert kept == {
        (gear, "10.0.0.2"): Reading("b2", at(6), 7, 1),
        (gear, "10.0.0.3"): Reading("b1", at(5), 5, 5),
    }
    assert [(c.rx, c.tx, c.reset) for c in counted] == [
        (60, 10, False),
        (150, 20, False),
        (7, 1, True),
        (5, 5, False),
    ]
    assert last == {(gear, "10.0.0.2"): Reading("b1", at(-5), 40, 0)}  # not changed
    found = domain.buckets(counted, {"10.0.0.3": "1002"})
    b0, b5 = domain.bucket_of(at(0)), domain.bucket_of(at(5))
    assert b0 == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert found.rows == {
        ("1001", "10.0.0.2", b0): (60, 10),
        ("1001", "10.0.0.2", b5): (157, 21),
        ("1002", "10.0.0.3", b5): (5, 5),
    }
    assert found.hours == {("1001", datetime(2026, 12, 5, 10, tzinfo=UTC)), ("1002", b0)}


def test_an_address_of_nobody_is_kept_under_no_contract() -> None:
    _, counted = domain.ingest({}, [Report("g", "10.9.9.9", None, Reading("b", at(0), 1, 2))])
    assert domain.buckets(counted, {}).rows == {("", "10.9.9.9", domain.bucket_of(at(0))): (1, 2)}


def test_an_hour_closes_one_report_interval_after_its_end() -> None:
    hour = domain.hour_of(at(30))
    assert domain.closes_at(hour, timedelta(minutes=5)) == datetime(2026, 12, 5, 11, 5, tzinfo=UTC)


CFG = nft.GearConfig()


def test_counters_table_counts_both_directions_under_its_boot_id() -> None:
    text = nft.traffic_ruleset(CFG, "abc123", ["10.0.0.2", "10.0.1.0/24", "2001:db8::/64"])
    assert "delete table inet billing_traffic" in text
    assert "ip saddr @tx4" in text and "ip daddr @rx4" in text
    assert "ip6 saddr @tx6" in text and "ip6 daddr @rx6" in text
    assert "priority filter + 10" in text  # after the access rules: dropped is not counted
    assert text.count('comment "abc123"') == 4
    assert "set rx4 { type ipv4_addr; flags interval; counter;" in text
    assert "elements = { 10.0.0.2, 10.0.1.0/24 }" in text
    with pytest.raises(nft.GearConfigError, match="boot id"):
        nft.traffic_ruleset(CFG, 'x"; flush ruleset', [])


def test_counters_table_changes_touch_only_what_comes_or_goes() -> None:
    script = nft.traffic_changes(CFG, ["10.0.0.2", "10.0.0.3"], ["10.0.0.3", "10.0.0.4"])
    assert script.splitlines() == [
        "delete element inet billing_traffic rx4 { 10.0.0.2 }",
        "delete element inet billing_traffic tx4 { 10.0.0.2 }",
        "add element inet billing_traffic rx4 { 10.0.0.4 }",
        "add element inet billing_traffic tx4 { 10.0.0.4 }",
    ]
    assert nft.traffic_changes(CFG, ["10.0.0.3"], ["10.0.0.3"]) == ""


def test_counted_elements_name_their_contract_and_fold_an_address_into_its_prefix() -> None:
    entries = [
        nft.Entry("1001", "active", 1, ("10.0.0.2",), ()),
        nft.Entry("1002", "suspended", 1, ("10.0.1.0/24", "10.0.1.7"), ("2001:db8::/64",)),
    ]
    assert nft.traffic_elements(entries) == {
        "10.0.0.2": "1001",
        "10.0.1.0/24": "1002",
        "2001:db8::/64": "1002",
    }


def _set(name: str, comment: str | None, elems: list[object]) -> dict[str, object]:
    s: dict[str, object] = {"family": "inet", "name": name, "table": "billing_traffic"}
    if comment is not None:
        s["comment"] = comment
    s["elem"] = elems
    return {"set": s}


def test_read_counters_parses_nft_json() -> None:
    def elem(val: object, n: int) -> dict[str, object]:
        return {"elem": {"val": val, "counter": {"packets": 1, "bytes": n}}}

    prefix = {"prefix": {"addr": "10.0.1.0", "len": 24}}
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "billing_traffic"}},
            _set("rx4", "b1", [elem("10.0.0.2", 3000), elem(prefix, 5)]),
            _set("tx4", "b1", [elem("10.0.0.2", 1000), elem(prefix, 6)]),
            _set("rx6", "b1", []),
            _set("tx6", "b1", [elem("2001:db8::1", 9)]),
        ]
    }
    counted = nft.read_counters(listing)
    assert counted.boot_id == "b1"
    assert counted.counters == {
        "10.0.0.2": (3000, 1000),
        "10.0.1.0/24": (5, 6),
        "2001:db8::1": (0, 9),
    }
    # a set missing or without the id: the table is to be made anew
    assert nft.read_counters({"nftables": listing["nftables"][:4]}).boot_id is None
    broken = [*listing["nftables"][:5], _set("tx6", None, [])]
    assert nft.read_counters({"nftables": broken}).boot_id is None
