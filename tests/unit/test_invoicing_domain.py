from datetime import date

import pytest

from services.invoicing.domain import BillableContract, DueRule, billing_run, invoice_number


@pytest.mark.parametrize(
    ("rule", "issued", "due"),
    [
        (DueRule("day_of_month", 15), date(2026, 12, 1), date(2026, 12, 15)),
        (DueRule("day_of_month", 15), date(2026, 12, 15), date(2026, 12, 15)),
        (DueRule("day_of_month", 15), date(2026, 12, 16), date(2027, 1, 15)),
        (DueRule("day_of_month", 31), date(2027, 2, 1), date(2027, 2, 28)),
        (DueRule("day_of_month", 20), date(2026, 12, 21), date(2027, 1, 20)),
        (DueRule("days_after_issue", 14), date(2026, 12, 25), date(2027, 1, 8)),
        (DueRule("days_after_issue", 0), date(2026, 12, 1), date(2026, 12, 1)),
    ],
)
def test_due_dates(rule: DueRule, issued: date, due: date) -> None:
    assert rule.due_on(issued) == due


@pytest.mark.parametrize(
    ("kind", "value"), [("day_of_month", 0), ("day_of_month", 32), ("days_after_issue", -1)]
)
def test_due_rule_rejects_nonsense(kind: str, value: int) -> None:
    with pytest.raises(ValueError, match=kind):
        DueRule(kind, value)  # type: ignore[arg-type]


def contracts() -> list[BillableContract]:
    rule = DueRule("day_of_month", 15)
    return [
        BillableContract("1002", True, 49900, "CZK", rule),
        BillableContract("1001", True, 49900, "CZK", rule),
        BillableContract("1003", False, 49900, "CZK", rule),  # inactive
        BillableContract("1004", True, 0, "CZK", rule),  # free
    ]


def test_billing_run_issues_one_invoice_per_active_contract() -> None:
    issued = billing_run(contracts(), "2026-12", date(2026, 12, 1), set(), 41)
    assert [(i.contract, i.invoice_number, i.vs, i.ss) for i in issued] == [
        ("1001", "2026000042", "1001", "2026000042"),
        ("1002", "2026000043", "1002", "2026000043"),
    ]
    assert all(i.due_on == date(2026, 12, 15) and i.amount_minor == 49900 for i in issued)


def test_billing_run_twice_issues_nothing_new() -> None:
    assert billing_run(contracts(), "2026-12", date(2026, 12, 1), {"1001", "1002"}, 2) == []


@pytest.mark.parametrize("period", ["2026-13", "26-12", "2026/12", "x"])
def test_billing_run_rejects_bad_period(period: str) -> None:
    with pytest.raises(ValueError, match="period"):
        billing_run(contracts(), period, date(2026, 12, 1), set(), 0)


def test_invoice_number_is_a_valid_specific_symbol() -> None:
    assert invoice_number(2026, 1) == "2026000001"
    with pytest.raises(ValueError, match="yy8"):
        invoice_number(2026, 1_000_000)
    # a million contracts billed monthly: YY + eight digits, still ten
    assert invoice_number(2026, 1_000_000, "yy8") == "2601000000"
    assert len(invoice_number(2026, 99_999_999, "yy8")) == 10
    with pytest.raises(ValueError):
        invoice_number(2026, 100_000_000, "yy8")


@pytest.mark.parametrize("style", ["yyyy6", "yy8"])
def test_billing_run_numbers_match_invoice_number_and_stop_at_the_range(style: str) -> None:
    run = billing_run(contracts(), "2026-12", date(2026, 12, 1), set(), 41, None, style)  # type: ignore[arg-type]
    assert [i.invoice_number for i in run] == [
        invoice_number(2026, 42 + k, style)  # type: ignore[arg-type]
        for k in range(len(run))
    ]
    top = 999_999 if style == "yyyy6" else 99_999_999
    done = {"1001", "1002"}  # a re-run after the year's last number: nothing new, no error
    assert billing_run(contracts(), "2026-12", date(2026, 12, 1), done, top, None, style) == []  # type: ignore[arg-type]
    last = billing_run(contracts(), "2026-12", date(2026, 12, 1), {"1001"}, top - 1, None, style)  # type: ignore[arg-type]
    assert last[0].invoice_number == invoice_number(2026, top, style)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):  # one past the range's end
        billing_run(contracts(), "2026-12", date(2026, 12, 1), set(), top - 1, None, style)  # type: ignore[arg-type]


def test_late_fees_are_added_to_the_next_invoice() -> None:
    from services.invoicing.domain import BillableContract, DueRule, billing_run

    c = BillableContract("1002", True, 49900, "CZK", DueRule("day_of_month", 15))
    [inv] = billing_run([c], "2027-01", date(2027, 1, 1), set(), 0, {"1002": 5000})
    assert (inv.amount_minor, inv.fees_minor) == (54900, 5000)
