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
    return Movement("2001234561/2010", "tx1", date(2026, 12, 20), amount, cur, vs, ss)


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


# --- identification (rules 1-3, rule 5's reasons), reversals, credit lots -------------------

from services.payments.domain import (  # noqa: E402
    BookedCredit,
    CreditLot,
    Identified,
    Lookup,
    apply_credit_lots,
    identify,
    message_tokens,
    reversed_credit,
    reverses,
    unapply,
)

EUR = ContractInfo("2001", "EUR")


def pm(
    amount: int = 49900,
    vs: str | None = None,
    ss: str | None = None,
    payer: str | None = None,
    message: str | None = None,
    cur: str = "CZK",
) -> Movement:
    return Movement("acc", "tx", date(2026, 12, 20), amount, cur, vs, ss, payer, message)


@pytest.mark.parametrize(
    ("movement", "facts", "expect"),
    [
        (pm(vs="1002", ss=OLD.ss), Lookup(C, OLD), ("1002", OLD.invoice_number, None)),
        (pm(vs="1002"), Lookup(C, None), ("1002", None, None)),
        (pm(ss=OLD.ss), Lookup(None, OLD), ("1002", OLD.invoice_number, None)),
        (
            pm(message="faktura"),
            Lookup(None, None, [OLD]),
            ("1002", OLD.invoice_number, "message-invoice"),
        ),
        (
            pm(message="smlouva 1002"),
            Lookup(None, None, [], [C]),
            ("1002", None, "message-contract"),
        ),
        (pm(payer="1/0100"), Lookup(None, None, payer_contract=C), ("1002", None, "payer-account")),
        (
            pm(vs="999", message="x"),
            Lookup(None, None, [OLD]),
            ("1002", OLD.invoice_number, "message-invoice"),
        ),
        (
            pm(vs="602123456", payer="1/0100"),
            Lookup(None, None, payer_contract=C),
            "phone-number-vs",
        ),
        (pm(vs="420777123456"), Lookup(None, None), "phone-number-vs"),
        (pm(vs="999"), Lookup(None, None), "unknown-contract"),
        (pm(ss="777"), Lookup(None, None), "unknown-invoice"),
        (pm(), Lookup(None, None), "no-symbols"),
        (pm(message="x"), Lookup(None, None, [], [C, EUR]), "ambiguous-message"),
        (pm(vs="1002", cur="EUR"), Lookup(C, None), "currency-mismatch"),
        (pm(amount=-5), Lookup(C, None), "debit"),
    ],
)
def test_identify(movement: Movement, facts: Lookup, expect: object) -> None:
    got = identify(movement, facts)
    if isinstance(expect, str):
        assert isinstance(got, Unmatched) and got.code == expect
    else:
        assert isinstance(got, Identified)
        first = got.first.invoice_number if got.first else None
        assert (got.contract.contract, first, got.how) == expect


def test_message_tokens() -> None:
    assert message_tokens("Számla 2026000007, szerz. 0001002 / 12") == ["2026000007", "1002"]
    assert message_tokens(None) == []


def credit(
    tx: str, amount: int, vs: str | None = "1002", payer: str | None = None, on: int = 20
) -> BookedCredit:
    return BookedCredit("acc", tx, date(2026, 12, on), amount, "CZK", vs, None, payer)


def test_reverses_needs_amount_and_symbols_or_payer() -> None:
    assert reverses(pm(-49900, vs="1002"), credit("a", 49900))
    assert not reverses(pm(-49900, vs="1003"), credit("a", 49900))
    assert not reverses(pm(-100, vs="1002"), credit("a", 49900))
    assert reverses(
        pm(-49900, payer="19-2000145399"), credit("a", 49900, None, "19-2000145399/0800")
    )
    assert not reverses(pm(-49900, payer="1/0100"), credit("a", 49900, None, "2/0100"))
    latest = reversed_credit(
        pm(-49900, vs="1002"), [credit("a", 49900, on=1), credit("b", 49900, on=5)]
    )
    assert latest is not None and latest.bank_tx_id == "b"


def test_credit_lots_are_spent_oldest_first() -> None:
    lots = [CreditLot("acc", "new", 30000, 2), CreditLot("acc", "old", 30000, 1)]
    used, outcome = apply_credit_lots(lots, OLD, 99)
    assert [(lot.bank_tx_id, n) for lot, n in used] == [("old", 30000), ("new", 19900)]
    assert outcome is not None and outcome.settled


def test_unapply_reopens_an_invoice_settled_within_tolerance() -> None:
    inv = OpenInvoice("x", "1002", "x", date(2026, 11, 15), 49940, 49900, "CZK")
    after = unapply(inv, 49900, 99)
    assert (after.paid_minor, after.settled, after.remaining_minor) == (0, False, 49940)
    assert unapply(inv, 0, 99).settled
