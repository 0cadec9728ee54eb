import dataclasses
from datetime import date

import pytest

from schemas.money import MAX_CREDIT_MINOR
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


# --- one pairing path: a run decided in order, what it needs, reversals, assignment -------

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

from services.payments import domain  # noqa: E402
from services.runtime import sql  # noqa: E402

RULES = domain.Rules(tolerance={"CZK": 99})


def run_facts(
    *invoices: OpenInvoice, waiting: tuple[str, str, int] | None = None
) -> domain.RunFacts:
    return domain.RunFacts(
        contracts={"1002": C},
        invoices={i.invoice_number: i for i in invoices},
        by_ss={i.ss: i.invoice_number for i in invoices},
        by_contract={"1002": [i.invoice_number for i in invoices]},
        loaded={"1002"},
        balance={},
        known=set(),
        waiting={waiting} if waiting else set(),
    )


def mvs(*specs: tuple[str, int, str | None, str | None]) -> list[Movement]:
    return [Movement("acc", tx, date(2026, 12, 20), n, "CZK", vs, ss) for tx, n, vs, ss in specs]


def test_a_run_is_decided_in_order_from_facts_kept_current() -> None:
    """The second payment sees the first's: OLD settled by the first, NEW paid by the
    second; the third is the first again (a repeat)."""
    run = mvs(("a", 49900, "1002", None), ("b", 49900, "1002", None), ("a", 49900, "1002", None))
    step = domain.decide_run(run, run_facts(OLD, NEW), RULES)
    assert step.need is None
    a, b, again = step.decisions
    assert isinstance(a, domain.Paired) and isinstance(b, domain.Paired)
    assert [x.invoice.invoice_number for x in a.matched.allocations] == [OLD.invoice_number]
    assert [x.invoice.invoice_number for x in b.matched.allocations] == [NEW.invoice_number]
    assert isinstance(again, domain.Repeat)


@pytest.mark.parametrize(
    ("movement", "waiting", "need"),
    [
        (("d", -100, "1002", None), None, "reversible"),  # a debit: what it may return
        (("u", 100, "999", None), None, "named"),  # rule 3: the message, the payer
        (("w", 100, "1002", None), ("acc", "CZK", 100), "waiting"),  # a debit may return it
    ],
)
def test_what_a_movement_needs_beyond_the_runs_facts(
    movement: tuple[str, int, str | None, str | None],
    waiting: tuple[str, str, int] | None,
    need: str,
) -> None:
    """The run stops at the movement in need, with what came before it decided."""
    run = mvs(("p", 200, "1002", None), movement, ("q", 200, "1002", None))
    step = domain.decide_run(run, run_facts(OLD, waiting=waiting), RULES)
    assert [type(d) for d in step.decisions] == [domain.Paired]
    assert step.need is not None and (step.need.what, step.need.movement) == (need, run[1])


def test_rule_3_asks_for_the_contract_it_found_then_pairs() -> None:
    facts = run_facts(OLD)
    payment = Movement("acc", "m", date(2026, 12, 20), 100, "CZK", None, None, "1/0100")
    facts.more = domain.More(("acc", "m"), named=Lookup(None, None, payer_contract=EUR_CZK))
    step = domain.decide_run([payment], facts, RULES)
    assert step.need == domain.Need("contract", payment, contract="3003")
    facts.loaded.add("3003")
    paired = domain.decide_run([payment], facts, RULES).decisions[0]
    assert isinstance(paired, domain.Paired) and paired.matched.rule == "payer-account"
    assert paired.matched.credit_minor == 100 and paired.balance_minor == 100


EUR_CZK = ContractInfo("3003", "CZK")


def test_a_debit_reverses_what_its_credit_paid() -> None:
    debit = mvs(("r", -49900, "1002", None))[0]
    facts = run_facts(OLD)
    original = credit("a", 49900, on=1)
    facts.more = domain.More(("acc", "r"), reversible=[original])
    step = domain.decide_run([debit, debit], facts, RULES)
    assert step.need == domain.Need("reversal", debit, original=original)
    paid = dataclasses.replace(OLD, paid_minor=49900)
    facts.more.reversal = domain.ReversalFacts(
        "1002", [(7, OLD.invoice_number, 49800)], {OLD.invoice_number: paid}, 100, 300
    )
    step = domain.decide_run([debit, mvs(("n", 5, "1002", None))[0]], facts, RULES)
    (reversed_,) = step.decisions
    assert isinstance(reversed_, domain.Reversed)
    r = reversed_.reversal
    assert (r.contract, r.allocation_ids, r.credit_removed_minor, r.balance_minor) == (
        "1002",
        [7],
        100,
        200,
    )
    assert [(x.amount_minor, x.outcome.paid_minor, x.outcome.settled) for x in r.reopened] == [
        (49800, 100, False)
    ]
    assert step.need is not None and step.need.what == "run"  # the facts it changed


def test_a_credit_an_unmatched_debit_returns_is_reversed_on_arrival() -> None:
    payment = mvs(("c", 2500, "1002", None))[0]
    facts = run_facts(OLD, waiting=("acc", "CZK", 2500))
    debit = BookedCredit("acc", "r", date(2026, 12, 19), -2500, "CZK", "1002", None, None)
    facts.more = domain.More(("acc", "c"), waiting=[debit])
    (decision,) = domain.decide_run([payment], facts, RULES).decisions
    assert isinstance(decision, domain.Reversed)
    assert (decision.reversal.debit_tx_id, decision.reversal.contract) == ("r", None)


def assign_facts(**kw: object) -> domain.AssignFacts:
    base: dict[str, object] = dict(
        movement=pm(49900, payer=None),
        status="unmatched",
        contract=C,
        invoice=None,
        open_invoices=[OLD],
        balance_minor=0,
    )
    return domain.AssignFacts(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "invoice", "remember", "reason", "unknown"),
    [
        (assign_facts(movement=None, status=None), None, False, "no bank movement", True),
        (assign_facts(status="matched"), None, False, "matched, not unmatched", False),
        (assign_facts(movement=pm(-5)), None, False, "is a debit", False),
        (assign_facts(contract=None), None, False, "no contract 1002", True),
        (assign_facts(contract=EUR), None, False, "billed in EUR", False),
        (assign_facts(), "x", False, "no invoice x of contract 1002", True),
        (assign_facts(), None, True, "no payer account", False),
        (
            assign_facts(movement=pm(99800), balance_minor=MAX_CREDIT_MINOR),
            None,
            False,
            "over the limit",
            False,
        ),
    ],
)
def test_an_assignment_is_refused_saying_why(
    facts: domain.AssignFacts, invoice: str | None, remember: bool, reason: str, unknown: bool
) -> None:
    request = domain.Assignment("acc", "tx", "1002", invoice, remember)
    refused = domain.assign(request, facts, RULES)
    assert isinstance(refused, domain.Refused)
    assert reason in refused.reason and refused.unknown == unknown


def test_an_assignment_pays_the_invoice_named_first() -> None:
    request = domain.Assignment("acc", "tx", "1002", NEW.invoice_number)
    paired = domain.assign(request, assign_facts(invoice=NEW, open_invoices=[OLD, NEW]), RULES)
    assert isinstance(paired, domain.Paired) and paired.matched.rule == "manual"
    assert [a.invoice.invoice_number for a in paired.matched.allocations] == [NEW.invoice_number]


PAYMENTS = Path(domain.__file__).parent
RULE_FUNCTIONS = {"identify", "match", "reverses", "reversed_credit", "within_credit_limit"}


def _names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
    }


def test_a_pairing_rule_is_applied_in_one_file() -> None:
    """Only domain.py applies a pairing rule: no second path in the service that pairs
    "exactly as the first would" (issue 28 item 3)."""
    for path in sorted(PAYMENTS.glob("*.py")):
        if path.name != "domain.py":
            assert not _names(path) & RULE_FUNCTIONS, path.name


def _queries_run(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "Q"
    }


def test_the_walk_of_a_run_reads_forward() -> None:
    """service -> facts (reads) -> domain (decides) -> ledger (writes): facts.py runs only
    reads and ledger.py only writes, neither imports the other or the service, and the
    domain imports none of them, so a reader never goes back into a file already left."""
    q = sql.load(str(PAYMENTS / "queries.sql"))
    first_words = {
        name: next(
            line.split(None, 1)[0].upper()
            for line in q.query(name).text.splitlines()
            if line.strip() and not line.lstrip().startswith("--")
        )
        for name in q.names
    }
    assert {first_words[n] for n in _queries_run(PAYMENTS / "facts.py")} <= {"SELECT", "WITH"}
    assert {first_words[n] for n in _queries_run(PAYMENTS / "ledger.py")} <= {"INSERT", "UPDATE"}
    imports = {
        f: {
            a.name if isinstance(n, ast.Import) else f"{n.module}.{a.name}"
            for n in ast.walk(ast.parse((PAYMENTS / f).read_text(encoding="utf-8")))
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        for f in ("facts.py", "domain.py", "ledger.py")
    }
    walk = {"services.payments.facts", "services.payments.ledger", "services.payments.service"}
    for f, names in imports.items():
        assert not names & walk, (f, names & walk)
