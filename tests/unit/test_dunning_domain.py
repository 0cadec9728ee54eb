"""Table-driven tests of decide(facts, policy, now): every condition and every guard; and
of judge_promise, which accepts or refuses a promise to pay."""

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.dunning.domain import (
    Decision,
    Facts,
    PromiseVerdict,
    UnpaidInvoice,
    add_working_days,
    decide,
    judge_promise,
)
from services.dunning.policy import Policy, PolicyError, load, presets

ISP = presets()["notice-then-suspend"]
D20 = presets()["due-20th-restrict"]
DUE = date(2026, 12, 15)  # a Tuesday
INV = UnpaidInvoice("2026000002", "1002", "2026000002", DUE, 49900, "CZK")
BASE = Facts("1002", "CZ", False, (INV,), "active", None, None, frozenset())


def at(day: date, hour: int = 11) -> datetime:
    """``hour`` in UTC: 11:00 UTC is 12:00 in Prague in winter, inside staffed hours."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def kinds(d: Decision) -> list[tuple[str, str]]:
    return [(a.kind, a.request_id) for a in d.actions]


def policy(**step: Any) -> Policy:
    guards = step.pop("guards", {"staffed_hours": ""})
    return Policy.model_validate(
        {"name": "t", "guards": guards, "steps": [{"name": "s", "action": "reminder", **step}]}
    )


def done(*ids: str) -> frozenset[str]:
    return frozenset(f"{i}@2026000002" for i in ids)


@pytest.mark.parametrize(
    ("day", "expected", "stage"),
    [
        (date(2026, 12, 15), [], "active"),
        (date(2026, 12, 17), [], "active"),
        (date(2026, 12, 18), [("reminder", "reminder-1@2026000002")], "active"),
        (
            date(2026, 12, 22),
            [("skip", "reminder-1@2026000002"), ("reminder", "reminder-2@2026000002")],
            "active",
        ),
        (
            date(2026, 12, 25),
            [
                ("skip", "reminder-1@2026000002"),
                ("skip", "reminder-2@2026000002"),
                ("notice", "notice@2026000002"),
            ],
            "notice",
        ),
    ],
)
def test_steps_by_days_overdue_with_catch_up(
    day: date, expected: list[tuple[str, str]], stage: str
) -> None:
    d = decide(BASE, ISP, at(day), 99)
    assert kinds(d) == expected
    assert d.stage == stage


def test_second_reminder_goes_by_sms_too() -> None:
    d = decide(replace(BASE, done=done("reminder-1")), ISP, at(date(2026, 12, 22)), 99)
    assert [(a.kind, a.channels) for a in d.actions] == [("reminder", ("email", "sms"))]


def test_same_facts_twice_change_nothing() -> None:
    first = decide(BASE, ISP, at(date(2026, 12, 18)), 99)
    again = replace(BASE, done=frozenset(a.request_id for a in first.actions))
    assert decide(again, ISP, at(date(2026, 12, 18)), 99).actions == ()


def test_next_check_is_the_next_threshold_at_local_midnight() -> None:
    d = decide(BASE, ISP, at(date(2026, 12, 10)), 99)
    assert d.next_check_at == datetime(2026, 12, 15, 23, 0, tzinfo=UTC)  # 16th 00:00 Prague
    d = decide(replace(BASE, done=done("reminder-1")), ISP, at(date(2026, 12, 18)), 99)
    assert d.next_check_at == datetime(2026, 12, 21, 23, 0, tzinfo=UTC)  # due + 7 days
    assert [u.step for u in d.upcoming] == ["reminder-2", "notice"]


def test_partial_payment_cannot_skip_a_stage() -> None:
    """Kill Bill 2297: the deadline stays anchored on the oldest still-unpaid invoice."""
    partly = replace(
        BASE, invoices=(replace(INV, open_minor=100),), done=done("reminder-1", "reminder-2")
    )
    assert kinds(decide(partly, ISP, at(date(2026, 12, 25)), 99)) == [
        ("notice", "notice@2026000002")
    ]


def test_an_overdue_top_up_invoice_is_not_dunned_while_a_regular_one_is() -> None:
    """A VoIP credit top-up left unpaid: no reminder, notice or suspension; the customer
    only does not get the credit. A regular invoice as overdue is reminded."""
    day = at(date(2026, 12, 18))
    topup = replace(INV, invoice_number="2026000009", ss="2026000009", topup=True)
    assert decide(replace(BASE, invoices=(topup,)), ISP, day, 99).actions == ()
    assert kinds(decide(replace(BASE, invoices=(INV, topup)), ISP, day, 99)) == [
        ("reminder", "reminder-1@2026000002")
    ]
    late = replace(BASE, invoices=(topup,), stage="active")
    assert decide(late, ISP, at(date(2027, 2, 1)), 99).actions == ()


def test_tolerance_makes_a_rounding_rest_nothing_overdue() -> None:
    rest = replace(BASE, invoices=(replace(INV, open_minor=40),))
    assert decide(rest, ISP, at(date(2026, 12, 25)), 99).actions == ()


# --- conditions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "n", "fires_on"),
    [
        (date(2026, 12, 18), 2, date(2026, 12, 22)),  # Fri + 2 working days: Tue
        (date(2026, 12, 23), 2, date(2026, 12, 29)),  # over Christmas: 24, 25, 26 are holidays
        (date(2026, 12, 31), 1, date(2027, 1, 4)),  # 1 January, then the weekend
    ],
)
def test_working_days_skip_weekends_and_czech_holidays(due: date, n: int, fires_on: date) -> None:
    assert add_working_days("CZ", due, n) == fires_on
    facts = replace(BASE, invoices=(replace(INV, due_on=due),))
    p = policy(after_working_days=n)
    assert decide(facts, p, at(fires_on - timedelta(days=1)), 99).actions == ()
    assert len(decide(facts, p, at(fires_on), 99).actions) == 1


def test_holidays_differ_by_country() -> None:
    # 17 November is a holiday in CZ and SK, 23 October only in HU, 5 July in CZ and SK.
    assert add_working_days("CZ", date(2026, 11, 16), 1) == date(2026, 11, 18)
    assert add_working_days("HU", date(2026, 11, 16), 1) == date(2026, 11, 17)
    assert add_working_days("HU", date(2026, 10, 22), 1) == date(2026, 10, 26)
    assert add_working_days("CZ", date(2026, 10, 22), 1) == date(2026, 10, 23)


@pytest.mark.parametrize(
    ("minimum", "fires"), [({"CZK": 49900}, True), ({"CZK": 50000}, False), ({"EUR": 1}, True)]
)
def test_minimum_overdue_amount_per_currency(minimum: dict[str, int], fires: bool) -> None:
    d = decide(BASE, policy(after_days=1, min_overdue=minimum), at(date(2026, 12, 20)), 99)
    assert bool(d.actions) is fires


def test_minimum_number_of_unpaid_invoices() -> None:
    p = policy(after_days=1, min_invoices=2)
    assert decide(BASE, p, at(date(2027, 1, 20)), 99).actions == ()
    second = replace(INV, invoice_number="2027000001", ss="2027000001", due_on=date(2027, 1, 15))
    two = replace(BASE, invoices=(INV, second))
    assert kinds(decide(two, p, at(date(2027, 1, 20)), 99)) == [("reminder", "s@2026000002")]


def test_due_20th_preset_reminds_then_restricts_after_month_end() -> None:
    inv = replace(INV, due_on=date(2026, 12, 20))
    facts = replace(BASE, invoices=(inv,))
    assert decide(facts, D20, at(date(2026, 12, 20)), 99).actions == ()
    d = decide(facts, D20, at(date(2026, 12, 21)), 99)
    assert [(a.kind, a.channels) for a in d.actions] == [("reminder", ("email", "sms"))]
    reminded = replace(facts, done=done("reminder"))
    assert decide(reminded, D20, at(date(2026, 12, 31), 22), 99).actions == ()
    d = decide(reminded, D20, at(date(2026, 12, 31), 23), 99)  # 1 January 00:00 Prague
    assert kinds(d) == [("restrict", "restrict@2026000002")] and d.stage == "restricted"
    paid = replace(reminded, invoices=(), stage="restricted", episode="2026000002")
    assert kinds(decide(paid, D20, at(date(2027, 1, 2)), 99)) == [("restore", "restore@2026000002")]


def test_late_fee_once_per_invoice() -> None:
    p = Policy.model_validate(
        {
            "name": "fees",
            "steps": [
                {"name": "r", "action": "reminder", "after_days": 1},
                {"name": "fee", "action": "fee", "after_days": 5, "fee": {"CZK": 5000}},
            ],
        }
    )
    second = replace(INV, invoice_number="2027000001", ss="2027000001", due_on=date(2027, 1, 15))
    facts = replace(BASE, invoices=(INV, second), done=frozenset({"r@2026000002"}))
    d = decide(facts, p, at(date(2027, 1, 21)), 99)
    fees = [(a.request_id, a.amount_minor, a.invoice) for a in d.actions if a.kind == "fee"]
    assert fees == [
        ("fee@2026000002", 5000, "2026000002"),
        ("fee@2027000001", 5000, "2027000001"),
    ]
    charged = replace(facts, done=facts.done | {"fee@2026000002", "fee@2027000001"})
    assert [
        a for a in decide(charged, p, at(date(2027, 1, 22)), 99).actions if a.kind == "fee"
    ] == []


# --- suspension and its guards ------------------------------------------------------------

ACK = datetime(2026, 12, 28, 9, 0, tzinfo=UTC)  # Monday 10:00 in Prague
NOTICED = replace(
    BASE,
    stage="notice",
    episode=INV.invoice_number,
    acknowledged_at=ACK,
    noticed_at=datetime(2026, 12, 25, 0, 0, tzinfo=UTC),
    done=done("reminder-1", "reminder-2", "notice"),
)


def test_suspend_ten_days_after_acknowledgement() -> None:
    suspend_at = ACK + timedelta(days=10)  # Thursday 7 January, 10:00
    assert decide(NOTICED, ISP, suspend_at - timedelta(seconds=1), 99).actions == ()
    d = decide(NOTICED, ISP, suspend_at, 99)
    assert kinds(d) == [("suspend", "suspend@2026000002")] and d.stage == "suspended"


def test_hard_deadline_when_the_notice_is_never_confirmed() -> None:
    unconfirmed = replace(NOTICED, acknowledged_at=None)
    assert decide(unconfirmed, ISP, at(date(2027, 1, 22)), 99).actions == ()
    d = decide(unconfirmed, ISP, at(date(2027, 1, 25)), 99)  # notice + 30 days, a Monday
    assert kinds(d) == [("suspend", "suspend@2026000002")]


def test_the_decision_that_sends_the_notice_schedules_its_hard_deadline() -> None:
    """The notice goes out in this decision, so the facts know of no notice yet: the check
    of its deadline must still be scheduled, or a customer who never confirms the notice
    (and sends nothing else) is never suspended."""
    reminded = replace(BASE, done=done("reminder-1", "reminder-2"))
    now = at(date(2026, 12, 25))
    d = decide(reminded, ISP, now, 99)
    assert kinds(d) == [("notice", "notice@2026000002")]
    assert d.next_check_at == now + timedelta(days=30)
    # what the timer then finds: the notice recorded at ``now``, never confirmed
    later = replace(reminded, stage="notice", episode=INV.invoice_number, noticed_at=now)
    later = replace(later, done=done("reminder-1", "reminder-2", "notice"))
    held = decide(later, ISP, d.next_check_at, 99)  # Sunday 24 January: after the weekend
    assert held.actions == () and held.held and held.next_check_at is not None
    assert kinds(decide(later, ISP, held.next_check_at, 99)) == [("suspend", "suspend@2026000002")]


@pytest.mark.parametrize(
    ("facts", "now", "held", "retry"),
    [
        # acknowledged on a Thursday: ten days later is a Sunday -> Monday 08:00
        (
            replace(NOTICED, acknowledged_at=datetime(2026, 12, 31, 9, 0, tzinfo=UTC)),
            datetime(2027, 1, 10, 9, 0, tzinfo=UTC),
            "weekend",
            datetime(2027, 1, 11, 7, 0, tzinfo=UTC),
        ),
        # ten days after 22 December is New Year's Day -> Monday 4 January 08:00
        (
            replace(NOTICED, acknowledged_at=datetime(2026, 12, 22, 9, 0, tzinfo=UTC)),
            datetime(2027, 1, 1, 9, 0, tzinfo=UTC),
            "public holiday",
            datetime(2027, 1, 4, 7, 0, tzinfo=UTC),
        ),
        # due at 18:00 local: after staffed hours -> next morning 08:00
        (
            replace(NOTICED, acknowledged_at=datetime(2026, 12, 28, 17, 0, tzinfo=UTC)),
            datetime(2027, 1, 7, 17, 0, tzinfo=UTC),
            "outside staffed hours",
            datetime(2027, 1, 8, 7, 0, tzinfo=UTC),
        ),
        # a payment with the contract's VS waits unmatched: hold for 14 days
        (
            replace(NOTICED, unmatched_since=datetime(2027, 1, 6, 9, 0, tzinfo=UTC)),
            datetime(2027, 1, 7, 9, 0, tzinfo=UTC),
            "a payment of the contract waits unmatched",
            datetime(2027, 1, 20, 9, 0, tzinfo=UTC),
        ),
        # the customer promised to pay by the 11th
        (
            replace(NOTICED, promised_until=datetime(2027, 1, 11, 9, 0, tzinfo=UTC)),
            datetime(2027, 1, 7, 9, 0, tzinfo=UTC),
            "postponed until",
            datetime(2027, 1, 11, 9, 0, tzinfo=UTC),
        ),
    ],
)
def test_fairness_guards_hold_the_suspension(
    facts: Facts, now: datetime, held: str, retry: datetime
) -> None:
    d = decide(facts, ISP, now, 99)
    assert d.actions == () and d.stage == "notice"
    assert d.held is not None and held in d.held
    assert d.next_check_at == retry
    after = decide(facts, ISP, retry, 99)
    assert kinds(after) == [("suspend", "suspend@2026000002")]


def test_staffed_hours_per_country() -> None:
    p = ISP.model_copy(
        update={
            "guards": ISP.guards.model_copy(
                update={"staffed_hours_by_country": {"SK": "06:00-10:00"}}
            )
        }
    )
    late_morning = datetime(2027, 1, 7, 9, 30, tzinfo=UTC)  # 10:30 in Prague and Bratislava
    assert kinds(decide(replace(NOTICED, country="CZ"), p, late_morning, 99))[0][0] == "suspend"
    held = decide(replace(NOTICED, country="SK"), p, late_morning, 99)
    assert held.actions == () and held.next_check_at == datetime(2027, 1, 8, 5, 0, tzinfo=UTC)


def test_guards_hold_only_the_policys_guarded_actions() -> None:
    saturday = at(date(2026, 12, 19))  # reminders go out on a Saturday
    assert kinds(decide(BASE, ISP, saturday, 99)) == [("reminder", "reminder-1@2026000002")]


def test_exempt_contract_is_reminded_but_never_noticed_suspended_or_restricted() -> None:
    exempt = replace(BASE, exempt=True, done=done("reminder-1", "reminder-2"))
    assert decide(exempt, ISP, at(date(2027, 1, 30)), 99).actions == ()
    assert (
        decide(replace(exempt, done=done("reminder")), D20, at(date(2027, 1, 5)), 99).actions == ()
    )


def test_no_suspension_without_a_notice() -> None:
    acked_without_notice = replace(BASE, acknowledged_at=ACK, done=done("reminder-1", "reminder-2"))
    d = decide(acked_without_notice, ISP, at(date(2027, 1, 20)), 99)
    assert kinds(d) == [("notice", "notice@2026000002")]


def test_restore_when_paid_and_again_in_a_new_episode() -> None:
    suspended = replace(NOTICED, invoices=(), stage="suspended")
    d = decide(suspended, ISP, at(date(2027, 1, 9)), 99)  # a Saturday: restore never waits
    assert kinds(d) == [("restore", "restore@2026000002")]
    assert d.stage == "active" and d.acknowledged_at is None
    again = replace(suspended, done=frozenset({"restore@2026000002"}))
    assert kinds(decide(again, ISP, at(date(2027, 2, 5)), 99)) == [
        ("restore", "restore@2026000002#2")
    ]


def test_reversal_puts_dunning_back_where_the_facts_place_it() -> None:
    """Paid and restored, then the payment is reversed: the same invoice is overdue again,
    the steps already done are not repeated, the next one comes on its own date."""
    restored = replace(
        NOTICED,
        stage="active",
        episode=None,
        acknowledged_at=None,
        done=NOTICED.done | {"restore@2026000002"},
    )
    d = decide(restored, ISP, at(date(2027, 1, 7)), 99)
    assert kinds(d) == [("notice", "notice@2026000002#2")] and d.stage == "notice"
    again = replace(restored, stage="notice", done=restored.done | {"notice@2026000002#2"})
    assert decide(again, ISP, at(date(2027, 1, 8)), 99).actions == ()


# --- promises to pay ------------------------------------------------------------------------

SUSPEND_AT = ACK + timedelta(days=10)  # when NOTICED would be suspended: 7 January 10:00
PROMISED = datetime(2026, 12, 29, 9, 0, tzinfo=UTC)  # the day after the acknowledgement
NO_PROMISES = ISP.model_copy(update={"promise": ISP.promise.model_copy(update={"max_days": 0})})
REFUSED = "no promise allowed now by the policy"


def _after(n: int) -> datetime:
    return SUSPEND_AT + timedelta(days=n)


@pytest.mark.parametrize(
    ("facts", "policy", "asked", "verdict"),
    [
        # within the policy's 5 days: from when the suspension would come
        (NOTICED, ISP, {"days": 3}, PromiseVerdict(accepted=True, until=_after(3))),
        # asks for more: shortened, and said so
        (
            NOTICED,
            ISP,
            {"days": 9},
            PromiseVerdict(accepted=True, until=_after(5), note="shortened to the policy's 5 days"),
        ),
        # asks for no number of days: all the policy allows
        (NOTICED, ISP, {}, PromiseVerdict(accepted=True, until=_after(5))),
        # a promise already runs beyond the suspension: counts from its end
        (
            replace(NOTICED, promised_until=_after(2)),
            ISP,
            {"days": 1},
            PromiseVerdict(accepted=True, until=_after(3)),
        ),
        # a second promise within once_per_days (180): refused
        (
            NOTICED,
            ISP,
            {"days": 3, "last_customer_promise": PROMISED - timedelta(days=179)},
            PromiseVerdict(accepted=False, until=_after(0), note=REFUSED),
        ),
        # the last one longer ago: accepted
        (
            NOTICED,
            ISP,
            {"days": 3, "last_customer_promise": PROMISED - timedelta(days=181)},
            PromiseVerdict(accepted=True, until=_after(3)),
        ),
        # a policy without promises
        (
            NOTICED,
            NO_PROMISES,
            {"days": 3},
            PromiseVerdict(accepted=False, until=_after(0), note=REFUSED),
        ),
        # nothing owed, no notice: nothing to postpone (nothing planned, so from now)
        (
            replace(BASE, invoices=()),
            ISP,
            {"days": 3},
            PromiseVerdict(
                accepted=False, until=PROMISED + timedelta(days=3), note="nothing to postpone"
            ),
        ),
    ],
)
def test_customer_promise_accepted_within_the_policy(
    facts: Facts, policy: Policy, asked: dict[str, Any], verdict: PromiseVerdict
) -> None:
    assert judge_promise(facts, policy, PROMISED, 99, by="customer", **asked) == verdict


def test_operator_postpones_as_given_or_to_the_planned_suspension() -> None:
    until = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
    given = judge_promise(NOTICED, NO_PROMISES, PROMISED, 99, by="operator", until=until)
    assert given == PromiseVerdict(accepted=True, until=until)
    # an operator may postpone a contract not in notice; a customer may not
    assert judge_promise(replace(BASE, invoices=()), ISP, PROMISED, 99, by="operator").accepted
    planned = judge_promise(NOTICED, ISP, PROMISED, 99, by="operator")
    assert planned == PromiseVerdict(accepted=True, until=SUSPEND_AT)


# --- the shape of the decision ----------------------------------------------------------------


def test_decision_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        Decision("active", None, None, (), None, (), 0, None, "nothing overdue")  # type: ignore[call-arg]


def test_no_dunning_function_grows_past_complexity_10() -> None:
    """decide was one function of McCabe complexity 24 (ruff's count) in three phases:
    it stays split into its phases, and _emit a table, not an if/elif chain."""
    found = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "C901",
         "--config", "lint.mccabe.max-complexity=10", "--output-format", "concise",
         "services/dunning/domain.py", "services/dunning/service.py"],
        capture_output=True, text=True, cwd=Path(__file__).parents[2], check=False,
    )  # fmt: skip
    assert found.returncode == 0, found.stdout + found.stderr


# --- policy files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\nsteps = []", "key 'steps'"),
        ("name = 'x'\n[[steps]]\nname='s'\naction='notice'", "exactly one of after_days"),
        (
            "name = 'x'\n[[steps]]\nname='s'\naction='suspend'\nafter_acknowledged_days=3",
            "notice step before",
        ),
        ("name = 'x'\n[[steps]]\nname='s'\naction='explode'\nafter_days=1", "key 'steps.0.action'"),
        (
            "name = 'x'\n[[steps]]\nname='s'\naction='fee'\nafter_days=1",
            "a fee step needs fee",
        ),
        (
            "name = 'x'\n[guards]\nstaffed_hours='late'\n[[steps]]\nname='s'\naction='reminder'\n"
            "after_days=1",
            "key 'guards.staffed_hours'",
        ),
        (
            "name = 'x'\n[[steps]]\nname='s'\naction='reminder'\nafter_days=1\nmin_overdue={czk=1}",
            "not an ISO 4217 currency",
        ),
        ("name = ", "invalid TOML"),
    ],
)
def test_bad_policy_file_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)
