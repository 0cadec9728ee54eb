"""Table-driven tests of decide(facts, policy, now)."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.dunning.domain import Facts, UnpaidInvoice, decide
from services.dunning.policy import PolicyError, load, presets

POLICY = presets()["notice-then-suspend"]
DUE = date(2026, 12, 15)
INV = UnpaidInvoice("2026000002", "1002", "2026000002", DUE, 49900, "CZK")
BASE = Facts("1002", "CZ", False, (INV,), "active", None, None, frozenset())


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def kinds(d) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(a.kind, a.request_id) for a in d.actions]


@pytest.mark.parametrize(
    ("day", "expected", "stage"),
    [
        (date(2026, 12, 15), [], "active"),
        (date(2026, 12, 17), [], "active"),
        (date(2026, 12, 18), [("reminder", "reminder-1@2026000002")], "active"),
        (
            date(2026, 12, 25),
            [("skip", "reminder-1@2026000002"), ("notice", "notice@2026000002")],
            "notice",
        ),
    ],
)
def test_steps_by_days_overdue(day: date, expected: list[tuple[str, str]], stage: str) -> None:
    d = decide(BASE, POLICY, at(day), 99)
    assert kinds(d) == expected
    assert d.stage == stage


def test_same_facts_twice_change_nothing() -> None:
    first = decide(BASE, POLICY, at(date(2026, 12, 18)), 99)
    done = replace(BASE, done=frozenset(a.request_id for a in first.actions))
    assert decide(done, POLICY, at(date(2026, 12, 18)), 99).actions == ()


def test_next_check_is_the_next_threshold_at_local_midnight() -> None:
    d = decide(BASE, POLICY, at(date(2026, 12, 10)), 99)
    assert d.next_check_at == datetime(2026, 12, 15, 23, 0, tzinfo=UTC)  # 16th 00:00 Prague
    reminded = replace(BASE, done=frozenset({"reminder-1@2026000002"}))
    d = decide(reminded, POLICY, at(date(2026, 12, 18)), 99)
    assert d.next_check_at == datetime(2026, 12, 24, 23, 0, tzinfo=UTC)  # due + 10 days


def test_partial_payment_cannot_skip_a_stage() -> None:
    """Kill Bill 2297: the deadline stays anchored on the oldest still-unpaid invoice."""
    partly = replace(
        BASE, invoices=(replace(INV, open_minor=100),), done=frozenset({"reminder-1@2026000002"})
    )
    d = decide(partly, POLICY, at(date(2026, 12, 25)), 99)
    assert kinds(d) == [("notice", "notice@2026000002")]


def test_tolerance_makes_a_rounding_rest_nothing_overdue() -> None:
    rest = replace(BASE, invoices=(replace(INV, open_minor=40),))
    assert decide(rest, POLICY, at(date(2026, 12, 25)), 99).actions == ()


def test_suspend_ten_days_after_acknowledgement() -> None:
    ack = at(date(2026, 12, 25), 9)
    noticed = replace(
        BASE,
        stage="notice",
        episode=INV.invoice_number,
        acknowledged_at=ack,
        done=frozenset({"reminder-1@2026000002", "notice@2026000002"}),
    )
    assert (
        decide(noticed, POLICY, ack + timedelta(days=10) - timedelta(seconds=1), 99).actions == ()
    )
    d = decide(noticed, POLICY, ack + timedelta(days=10), 99)
    assert kinds(d) == [("suspend", "suspend@2026000002")] and d.stage == "suspended"


def test_no_suspension_without_acknowledgement() -> None:
    noticed = replace(
        BASE,
        stage="notice",
        episode=INV.invoice_number,
        done=frozenset({"reminder-1@2026000002", "notice@2026000002"}),
    )
    d = decide(noticed, POLICY, at(date(2027, 3, 1)), 99)
    assert d.actions == () and d.stage == "notice"


def test_exempt_contract_is_reminded_but_never_noticed_or_suspended() -> None:
    exempt = replace(BASE, exempt=True, done=frozenset({"reminder-1@2026000002"}))
    assert decide(exempt, POLICY, at(date(2027, 1, 30)), 99).actions == ()


def test_restore_when_paid() -> None:
    suspended = replace(
        BASE,
        invoices=(),
        stage="suspended",
        episode=INV.invoice_number,
        acknowledged_at=at(date(2026, 12, 25)),
    )
    d = decide(suspended, POLICY, at(date(2027, 1, 5)), 99)
    assert kinds(d) == [("restore", "restore@2026000002")]
    assert d.stage == "active" and d.acknowledged_at is None
    again = replace(suspended, done=frozenset({"restore@2026000002"}))
    assert kinds(decide(again, POLICY, at(date(2027, 2, 5)), 99)) == [
        ("restore", "restore@2026000002#2")
    ]


def test_nothing_to_do_when_paid_and_active() -> None:
    assert decide(replace(BASE, invoices=()), POLICY, at(date(2027, 1, 5)), 99).actions == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\nsteps = []", "key 'steps'"),
        ("name = 'x'\n[[steps]]\nname='s'\naction='notice'", "needs after_days"),
        (
            "name = 'x'\n[[steps]]\nname='s'\naction='suspend'\nafter_acknowledged_days=3",
            "notice step before",
        ),
        ("name = 'x'\n[[steps]]\nname='s'\naction='explode'\nafter_days=1", "key 'steps.0.action'"),
        ("name = ", "invalid TOML"),
    ],
)
def test_bad_policy_file_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)
