from datetime import date

import pytest

from services.payments.domain import (
    ContractInfo,
    Matched,
    Movement,
    OpenInvoice,
    Unmatched,
    apply_credit,
    match,
)

C = ContractInfo("1002", "CZK")
OLD = OpenInvoice("2026000002", "1002", "2026000002", date(2026, 11, 15), 49900, 0, "CZK")
NEW = OpenInvoice("2026000009", "1002", "2026000009", date(2026, 12, 15), 49900, 0, "CZK")


def mv(amount: int, vs: str | None = "1002", ss: str | None = None, cur: str = "CZK") -> Movement:
    return Movement("2001234567/2010", "tx1", date(2026, 12, 20), amount, cur, vs, ss)


def test_ss_names_the_invoice_first() -> None:
    d = match(mv(49900, ss=NEW.ss), C, [OLD, NEW], NEW, 99)
    assert isinstance(d, Matched)
    assert [(a.invoice.invoice_number, a.amount_minor, a.rule) for a in d.allocations] == [
        (NEW.invoice_number, 49900, "ss")
    ]
    assert d.outcomes[0].settled and d.credit_minor == 0


def test_vs_alone_pays_oldest_first_and_several() -> None:
    d = match(mv(49900 * 2 + 500), C, [NEW, OLD], None, 99)
    assert isinstance(d, Matched)
    assert [a.invoice.invoice_number for a in d.allocations] == [
        OLD.invoice_number,
        NEW.invoice_number,
    ]
    assert all(o.settled for o in d.outcomes)
    assert d.credit_minor == 500


def test_underpayment_leaves_invoice_partially_paid() -> None:
    d = match(mv(49800, ss=OLD.ss), C, [OLD], OLD, 99)
    assert isinstance(d, Matched)
    assert not d.outcomes[0].settled and d.outcomes[0].remaining_minor == 100


def test_rounding_tolerance_counts_as_settled() -> None:
    inv = OpenInvoice("2026000010", "1002", "2026000010", date(2026, 12, 15), 49940, 0, "CZK")
    d = match(mv(49900, ss=inv.ss), C, [inv], inv, 99)
    assert isinstance(d, Matched)
    assert d.outcomes[0].settled and d.outcomes[0].forgiven_minor == 40


@pytest.mark.parametrize(
    ("movement", "contract", "code"),
    [
        (mv(-100), C, "debit"),
        (mv(49900, vs=None, ss=None), C, "no-symbols"),
        (mv(49900, vs="777777777"), None, "unknown-contract"),
        (mv(2000, cur="EUR"), C, "currency-mismatch"),
    ],
)
def test_unmatched_with_reason(
    movement: Movement, contract: ContractInfo | None, code: str
) -> None:
    d = match(movement, contract, [OLD], None, 99)
    assert isinstance(d, Unmatched) and d.code == code and d.reason


def test_ss_of_another_contract_is_ignored() -> None:
    other = OpenInvoice("2026000011", "1005", "2026000011", date(2026, 12, 15), 100, 0, "CZK")
    d = match(mv(49900, ss=other.ss), C, [OLD], other, 99)
    assert isinstance(d, Matched)
    assert [a.invoice.invoice_number for a in d.allocations] == [OLD.invoice_number]


def test_ss_without_vs_finds_the_contract() -> None:
    d = match(mv(49900, vs=None, ss=OLD.ss), None, [OLD], OLD, 99)
    assert isinstance(d, Matched) and d.contract == "1002"


def test_credit_pays_the_next_invoice() -> None:
    applied = apply_credit(60000, NEW, 99)
    assert applied.outcome is not None and applied.outcome.settled
    assert applied.credit_left == 60000 - 49900
    assert apply_credit(0, NEW, 99).outcome is None
