"""Pairing bank movements with invoices: every rule, in the order it applies. Pure: facts
in, decisions out. ``facts.py`` loads the facts, ``ledger.py`` writes what is decided here.

A run of movements is decided in order (``decide_run``), each from the facts as the ones
before it left them. The run's facts (``RunFacts``, loaded at once) serve rules 1-2; what a
movement needs beyond them is decided here too and asked for as a ``Need``: the run stops
at that movement, what is decided so far is written, the facts are loaded, and the run goes
on from there. A single movement is a run of one.

Identification (``identify``), in order; the first that applies decides the contract:
1. ``ss``: the specific symbol names an open invoice of the contract the VS names (or, with
   no VS, any open invoice): that invoice first.
2. ``vs-oldest``: the VS names a contract: its open invoices, oldest due date first.
   A VS that names no contract but looks like a phone number (old VoIP credit top-ups
   used the number as VS) stops here: unmatched, never guessed.
3. No usable symbols: ``message-invoice`` / ``message-contract`` when the message names
   exactly one contract through an invoice number, SS or contract number (Hungarian
   közlemény), else ``payer-account`` when the payer's account was confirmed for a
   contract by an operator.
Before identification (``decide``): a movement already stored is a repeat; a movement of
zero is queued; a credit an unmatched debit already returns is reversed on arrival.
Allocation (``match``): the rest goes to the contract's open invoices oldest first; one
payment can settle several; what is left becomes contract credit, kept per payment (a
"lot") and applied to the next invoice when it is issued. An invoice counts as settled
when what is still open is within the currency's rounding tolerance (a customer who pays
499.00 on a 499.40 invoice has paid).
Credit limit (``within_credit_limit``): a payment whose leftover would lift the contract's
credit over ``schemas.money.MAX_CREDIT_MINOR`` is not paired but queued (``credit-limit``)
for an operator to refund or assign: the sum of a contract's credit lots always fits its
bigint column, so later payments to the contract still apply.
Reversal (``reverses``, ``reverse``): a debit that returns a credit we booked (same account,
currency and amount, and the same symbols or payer account) un-applies that payment: what
it paid, directly and through its credit, is taken back.
Manual assignment (``assign``): an operator pairs a queued payment with a contract, one
invoice first if named, by the allocation rule above.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from schemas.money import MAX_CREDIT_MINOR


@dataclass(frozen=True)
class OpenInvoice:
    invoice_number: str
    contract: str
    ss: str
    due_on: date
    amount_minor: int
    paid_minor: int
    currency: str

    @property
    def open_minor(self) -> int:
        return self.amount_minor - self.paid_minor


@dataclass(frozen=True)
class Movement:
    account: str
    bank_tx_id: str
    booked_on: date
    amount_minor: int
    currency: str
    vs: str | None
    ss: str | None
    counterparty_account: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ContractInfo:
    contract: str
    currency: str


@dataclass(frozen=True)
class Allocated:
    invoice: OpenInvoice
    amount_minor: int
    rule: str

    @property
    def paid_after(self) -> int:
        return self.invoice.paid_minor + self.amount_minor


@dataclass(frozen=True)
class InvoiceOutcome:
    invoice: OpenInvoice
    paid_minor: int
    settled: bool
    forgiven_minor: int  # open amount dropped by the rounding tolerance

    @property
    def remaining_minor(self) -> int:
        return self.invoice.amount_minor - self.paid_minor


@dataclass(frozen=True)
class Matched:
    contract: str
    allocations: list[Allocated]
    outcomes: list[InvoiceOutcome]
    credit_minor: int
    rule: str


@dataclass(frozen=True)
class Unmatched:
    code: str
    reason: str


@dataclass(frozen=True)
class CreditApplied:
    allocation: Allocated | None
    outcome: InvoiceOutcome | None
    credit_left: int


@dataclass
class _Allocator:
    tolerance: int
    allocations: list[Allocated] = field(default_factory=list)
    outcomes: list[InvoiceOutcome] = field(default_factory=list)

    def allocate(self, inv: OpenInvoice, available: int, rule: str) -> int:
        amount = min(available, inv.open_minor)
        if amount <= 0:
            return 0
        paid = inv.paid_minor + amount
        still_open = inv.amount_minor - paid
        settled = still_open <= self.tolerance
        self.allocations.append(Allocated(inv, amount, rule))
        self.outcomes.append(InvoiceOutcome(inv, paid, settled, still_open if settled else 0))
        return amount


def match(
    mv: Movement,
    contract: ContractInfo | None,
    open_invoices: list[OpenInvoice],
    invoice_by_ss: OpenInvoice | None,
    tolerance: int,
    how: str | None = None,
) -> Matched | Unmatched:
    """Decide where an incoming movement goes.

    ``open_invoices`` are the open invoices of ``contract``; ``invoice_by_ss`` is the open
    invoice to pay first, if any (the SS's, or the one rule 3 found; possibly of another
    contract, then ignored). ``how`` names the rule when the contract was identified by
    rule 3 or by an operator; every allocation then carries it."""
    if mv.amount_minor <= 0:
        return Unmatched("debit", f"outgoing movement of {mv.amount_minor} is not a payment")
    if how is None and mv.vs is None and mv.ss is None:
        return Unmatched("no-symbols", "payment carries neither a variable nor a specific symbol")
    if contract is None and invoice_by_ss is not None and mv.vs is None:
        contract = ContractInfo(invoice_by_ss.contract, invoice_by_ss.currency)
    if contract is None:
        return Unmatched("unknown-contract", f"no contract with variable symbol {mv.vs}")
    if mv.currency != contract.currency:
        return Unmatched(
            "currency-mismatch",
            f"paid in {mv.currency}, contract {contract.contract} is billed in {contract.currency}",
        )
    alloc = _Allocator(tolerance)
    available = mv.amount_minor
    rule = how or "vs-oldest"
    first = None
    if invoice_by_ss is not None and invoice_by_ss.contract == contract.contract:
        first = invoice_by_ss
        rule = how or "ss"
        available -= alloc.allocate(first, available, rule)
    for inv in sorted(open_invoices, key=lambda i: (i.due_on, i.invoice_number)):
        if available <= 0:
            break
        if first is not None and inv.invoice_number == first.invoice_number:
            continue
        available -= alloc.allocate(inv, available, how or "vs-oldest")
    return Matched(contract.contract, alloc.allocations, alloc.outcomes, available, rule)


def within_credit_limit(
    decision: Matched, balance_minor: int, limit: int = MAX_CREDIT_MINOR
) -> Matched | Unmatched:
    """``decision`` as it is, unless what it keeps as credit would lift the contract's
    credit (``balance_minor`` before it) over ``limit``."""
    after = balance_minor + decision.credit_minor
    if decision.credit_minor <= 0 or after <= limit:
        return decision
    return Unmatched(
        "credit-limit",
        f"contract {decision.contract} would hold {after} minor units of credit, over the "
        f"limit of {limit}: refund the payment or assign it by hand",
    )


def apply_credit_lots(
    lots: list[CreditLot], invoice: OpenInvoice, tolerance: int
) -> tuple[list[tuple[CreditLot, int]], InvoiceOutcome | None]:
    """Pay a new invoice from the contract's credit, oldest lot first. Returns what each
    lot gave and the invoice's outcome (None when there was nothing to give)."""
    used: list[tuple[CreditLot, int]] = []
    open_minor = invoice.open_minor
    for lot in sorted(lots, key=lambda lot: lot.order):
        if open_minor <= 0:
            break
        take = min(lot.remaining_minor, open_minor)
        if take > 0:
            used.append((lot, take))
            open_minor -= take
    if not used:
        return [], None
    paid = invoice.paid_minor + sum(n for _, n in used)
    still_open = invoice.amount_minor - paid
    settled = still_open <= tolerance
    return used, InvoiceOutcome(invoice, paid, settled, still_open if settled else 0)


def apply_credit(credit_minor: int, invoice: OpenInvoice, tolerance: int) -> CreditApplied:
    """A new invoice of a contract that has credit is paid from it at once."""
    if credit_minor <= 0:
        return CreditApplied(None, None, credit_minor)
    alloc = _Allocator(tolerance)
    used = alloc.allocate(invoice, credit_minor, "credit")
    if used == 0:
        return CreditApplied(None, None, credit_minor)
    return CreditApplied(alloc.allocations[0], alloc.outcomes[0], credit_minor - used)


# --- identification (rules 1-3 and the unmatched reasons of rule 5) ----------------------


@dataclass(frozen=True)
class CreditLot:
    """Credit left over from one payment; spent oldest first."""

    account: str
    bank_tx_id: str
    remaining_minor: int
    order: int


@dataclass(frozen=True)
class Lookup:
    """What the tables say of one movement's symbols, message and payer."""

    contract_by_vs: ContractInfo | None
    invoice_by_ss: OpenInvoice | None
    # invoices (open or not) and contracts the message names, by number or symbol
    message_invoices: list[OpenInvoice] = field(default_factory=list)
    message_contracts: list[ContractInfo] = field(default_factory=list)
    payer_contract: ContractInfo | None = None
    complete: bool = True  # False: rule 3's facts (the three above) are not loaded yet


@dataclass(frozen=True)
class Identified:
    contract: ContractInfo
    first: OpenInvoice | None
    how: str | None  # None: rules 1-2 name their own allocations


# Czech and Slovak mobile numbers as customers typed them into the VS: 9 digits starting
# 6, 7 (CZ) or 9 (SK, leading 0 dropped), optionally with the country code.
DEFAULT_PHONE_VS = r"(?:420|421)?[679][0-9]{8}"

_TOKEN = re.compile(r"(?<![0-9])[0-9]{3,10}(?![0-9])")


def message_tokens(message: str | None) -> list[str]:
    """Numbers in a payment message that could be an invoice, SS or contract number."""
    if not message:
        return []
    found: list[str] = []
    for raw in _TOKEN.findall(message):
        token = raw.lstrip("0")
        if len(token) >= 3 and token not in found:
            found.append(token)
    return found


def identify(
    mv: Movement, facts: Lookup, phone_vs: str = DEFAULT_PHONE_VS
) -> Identified | Unmatched | Need:
    """Which contract (and which invoice first) an incoming payment is for; a ``Need`` of
    rule 3's facts when it gets that far and ``facts`` lack them."""
    if mv.amount_minor <= 0:
        return Unmatched("debit", f"outgoing movement of {mv.amount_minor} is not a payment")
    found: Identified | None = None
    if facts.contract_by_vs is not None:
        by_ss = facts.invoice_by_ss
        first = by_ss if by_ss and by_ss.contract == facts.contract_by_vs.contract else None
        found = Identified(facts.contract_by_vs, first, None)
    elif mv.vs is None and facts.invoice_by_ss is not None:
        inv = facts.invoice_by_ss
        found = Identified(ContractInfo(inv.contract, inv.currency), inv, None)
    elif mv.vs is not None and re.fullmatch(phone_vs, mv.vs):
        return Unmatched(
            "phone-number-vs",
            f"variable symbol {mv.vs} names no contract and looks like a phone number "
            "(legacy VoIP credit payment)",
        )
    elif not facts.complete:
        return Need("named", mv)
    else:
        named: dict[str, ContractInfo] = {}
        for inv in facts.message_invoices:
            named.setdefault(inv.contract, ContractInfo(inv.contract, inv.currency))
        for c in facts.message_contracts:
            named.setdefault(c.contract, c)
        if len(named) > 1:
            return Unmatched(
                "ambiguous-message",
                f"the message names several contracts: {', '.join(sorted(named))}",
            )
        if named:
            contract = next(iter(named.values()))
            open_named = [i for i in facts.message_invoices if i.open_minor > 0]
            first = min(open_named, key=lambda i: (i.due_on, i.invoice_number), default=None)
            found = Identified(contract, first, "message-invoice" if first else "message-contract")
        elif facts.payer_contract is not None:
            found = Identified(facts.payer_contract, None, "payer-account")
        elif mv.vs is not None:
            return Unmatched("unknown-contract", f"no contract with variable symbol {mv.vs}")
        elif mv.ss is not None:
            return Unmatched("unknown-invoice", f"no open invoice with specific symbol {mv.ss}")
        else:
            return Unmatched(
                "no-symbols",
                "payment carries no symbols, its message names no invoice or contract, and "
                "the payer's account is not confirmed for any contract",
            )
    if mv.currency != found.contract.currency:
        return Unmatched(
            "currency-mismatch",
            f"paid in {mv.currency}, contract {found.contract.contract} is billed in "
            f"{found.contract.currency}",
        )
    return found


# --- reversals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BookedCredit:
    account: str
    bank_tx_id: str
    booked_on: date
    amount_minor: int
    currency: str
    vs: str | None
    ss: str | None
    counterparty_account: str | None

    @classmethod
    def of(cls, mv: Movement) -> BookedCredit:
        return cls(
            mv.account,
            mv.bank_tx_id,
            mv.booked_on,
            mv.amount_minor,
            mv.currency,
            mv.vs,
            mv.ss,
            mv.counterparty_account,
        )


def reverses(debit: Movement | BookedCredit, credit: BookedCredit) -> bool:
    """Is ``debit`` the bank returning ``credit``? Same account, currency and amount, and
    either the same VS (and SS, if the debit has one) or the same payer account."""
    if debit.amount_minor >= 0 or credit.amount_minor != -debit.amount_minor:
        return False
    if (debit.account, debit.currency) != (credit.account, credit.currency):
        return False
    if debit.vs is not None and debit.vs == credit.vs and debit.ss in (None, credit.ss):
        return True
    if debit.vs is None and debit.ss is not None and debit.ss == credit.ss:
        return True
    return _same_account(debit.counterparty_account, credit.counterparty_account)


def _same_account(a: str | None, b: str | None) -> bool:
    """Equal accounts; a bank code given on one side only does not make them differ."""
    if not a or not b:
        return False
    if a == b:
        return True
    a_num, _, a_bank = a.partition("/")
    b_num, _, b_bank = b.partition("/")
    return a_num == b_num and (not a_bank or not b_bank)


def reversed_credit(debit: Movement, candidates: list[BookedCredit]) -> BookedCredit | None:
    """The credit a debit reverses: of those it matches, the latest booked on or before it
    (a reversal follows its payment), else the earliest after (statements out of order)."""
    fits = [c for c in candidates if reverses(debit, c)]
    before = [c for c in fits if c.booked_on <= debit.booked_on]
    if before:
        return max(before, key=lambda c: (c.booked_on, c.bank_tx_id))
    return min(fits, key=lambda c: (c.booked_on, c.bank_tx_id), default=None)


def unapply(invoice: OpenInvoice, amount_minor: int, tolerance: int) -> InvoiceOutcome:
    """An invoice after ``amount_minor`` of what was paid on it is taken back."""
    paid = max(0, invoice.paid_minor - amount_minor)
    still_open = invoice.amount_minor - paid
    settled = still_open <= tolerance
    after = dataclasses.replace(invoice, paid_minor=paid)
    return InvoiceOutcome(after, paid, settled, still_open if settled else 0)


@dataclass(frozen=True)
class PaidBy:
    """What one payment (or its credit lot) has paid of an invoice, net of what went back."""

    account: str
    bank_tx_id: str
    amount_minor: int
    last_id: int  # its newest allocation: the later payment gives back first


@dataclass(frozen=True)
class Credited:
    """An invoice after a credit note: what it asks now, what is paid of it, and what was
    paid above that going back to the paying payments' credit lots, newest payment first."""

    invoice: OpenInvoice  # before the note
    credited_minor: int  # by all its notes, this one included
    outcome: InvoiceOutcome  # its invoice asks what is due after the note
    was_settled: bool
    to_credit: list[tuple[str, str, int]]  # (account, bank_tx_id, amount)

    @property
    def credit_minor(self) -> int:
        return sum(n for _, _, n in self.to_credit)


def apply_credit_note(
    invoice: OpenInvoice,
    was_settled: bool,
    credited_before: int,
    credited_minor: int,
    paid_by: list[PaidBy],
    tolerance: int,
) -> Credited | None:
    """A credit note lowers what ``invoice`` asks by what it credits beyond the notes
    already applied (``credited_minor`` counts them all, so a repeat or an older note
    changes nothing: None). Whatever is paid above the new amount becomes credit of the
    payments that paid it, newest first; a rest within ``tolerance`` is forgiven as a
    payment's would be; fully credited, the invoice is settled with nothing paid."""
    delta = credited_minor - credited_before
    if delta <= 0:
        return None
    if delta > invoice.amount_minor:
        raise ValueError(
            f"credit note on invoice {invoice.invoice_number} credits {delta}, "
            f"more than the {invoice.amount_minor} it asks"
        )
    due = invoice.amount_minor - delta
    excess = max(0, invoice.paid_minor - due)
    to_credit: list[tuple[str, str, int]] = []
    left = excess
    for p in sorted(paid_by, key=lambda p: p.last_id, reverse=True):
        if left <= 0:
            break
        take = min(left, p.amount_minor)
        if take > 0:
            to_credit.append((p.account, p.bank_tx_id, take))
            left -= take
    if left:
        raise ValueError(
            f"invoice {invoice.invoice_number}: {invoice.paid_minor} paid but its payments "
            f"account for {invoice.paid_minor - left}"
        )
    paid = invoice.paid_minor - excess
    after = dataclasses.replace(invoice, amount_minor=due, paid_minor=paid)
    still_open = due - paid
    settled = still_open <= tolerance
    outcome = InvoiceOutcome(after, paid, settled, still_open if settled else 0)
    return Credited(invoice, credited_minor, outcome, was_settled, to_credit)


@dataclass(frozen=True)
class ReversalFacts:
    """What a credit being taken back paid, as the tables hold it now."""

    contract: str | None  # None: the credit was never paired, so it paid nothing
    allocations: list[tuple[int, str, int]]  # live (id, invoice_number, amount), oldest first
    invoices: dict[str, OpenInvoice]  # current figures of the invoices those paid
    lot_minor: int  # the unspent rest of its credit lot
    balance_minor: int  # the contract's credit, that lot included


NEVER_PAIRED = ReversalFacts(None, [], {}, 0, 0)


@dataclass(frozen=True)
class Reopened:
    invoice: OpenInvoice  # before the reversal
    amount_minor: int  # what the reversed payment had paid of it
    outcome: InvoiceOutcome  # after


@dataclass(frozen=True)
class Reversal:
    original: BookedCredit
    debit_tx_id: str
    booked_on: date  # the debit's
    contract: str | None
    allocation_ids: list[int]  # taken back
    reopened: list[Reopened]  # per invoice, in the order it was first paid
    credit_removed_minor: int
    balance_minor: int  # the contract's credit after


def reverse(
    original: BookedCredit, debit_tx_id: str, booked_on: date, facts: ReversalFacts, rules: Rules
) -> Reversal:
    """Take back everything ``original`` paid, directly and through its credit."""
    per_invoice: dict[str, int] = {}
    for _, number, amount in facts.allocations:
        per_invoice[number] = per_invoice.get(number, 0) + amount
    reopened = []
    for number, amount in per_invoice.items():
        if amount == 0:  # a credit note gave all it paid back to its credit lot
            continue
        inv = facts.invoices[number]
        reopened.append(
            Reopened(inv, amount, unapply(inv, amount, rules.tolerance_of(inv.currency)))
        )
    return Reversal(
        original,
        debit_tx_id,
        booked_on,
        facts.contract,
        [a[0] for a in facts.allocations],
        reopened,
        facts.lot_minor,
        facts.balance_minor - facts.lot_minor,
    )


# --- a run of movements, decided in order ---------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """The settings pairing goes by."""

    phone_vs: str = DEFAULT_PHONE_VS
    tolerance: Mapping[str, int] = field(default_factory=dict)  # minor units per currency

    def tolerance_of(self, currency: str) -> int:
        return self.tolerance.get(currency, 0)


@dataclass(frozen=True)
class Need:
    """Facts the first movement not yet decided needs loaded (``facts.more``):
    ``waiting``: the unmatched debits that may return this credit;
    ``reversible``: the credits this debit may return;
    ``named``: rule 3's, what the message and the payer's account name;
    ``contract``: the open invoices and credit of ``contract``, found by rule 3;
    ``reversal``: what ``original``, the credit this debit returns, paid;
    ``run``: the run's facts again, for the movements from this one on (a reversal changed
    invoices and credit the facts held)."""

    what: Literal["waiting", "reversible", "named", "contract", "reversal", "run"]
    movement: Movement
    contract: str | None = None
    original: BookedCredit | None = None


@dataclass
class More:
    """What one movement needed beyond the run's facts, as loaded for it; None: not asked."""

    key: tuple[str, str]  # the movement's (account, bank_tx_id)
    waiting: list[BookedCredit] | None = None
    reversible: list[BookedCredit] | None = None
    named: Lookup | None = None  # message_invoices, message_contracts, payer_contract
    reversal: ReversalFacts | None = None


NOTHING_MORE = More(("", ""))  # never changed: ``facts.more`` starts a movement's own


@dataclass
class RunFacts:
    """The tables as a run's movements still to decide see them, loaded at once for rules
    1-2 (``facts.run``) and kept current here as each is decided, so the next one sees what
    the ones before it did without the tables being read or written in between."""

    contracts: dict[str, ContractInfo]  # the contracts the run's VSs name
    invoices: dict[str, OpenInvoice]  # open invoices of the loaded contracts, current
    by_ss: dict[str, str]  # SS -> invoice number
    by_contract: dict[str, list[str]]  # open invoice numbers, (due_on, number) order
    loaded: set[str]  # contracts whose open invoices and credit are all here
    balance: dict[str, int]  # credit of loaded contracts (absent: none)
    known: set[tuple[str, str]]  # (account, bank_tx_id) stored
    waiting: set[tuple[str, str, int]]  # (account, currency, amount) an unmatched debit returns
    settled: set[str] = field(default_factory=set)  # invoice numbers settled in this run
    more: More | None = None  # for the movement that asked last

    def open_of(self, contract: str) -> list[OpenInvoice]:
        return [
            self.invoices[n] for n in self.by_contract.get(contract, []) if n not in self.settled
        ]

    def more_for(self, mv: Movement) -> More:
        """What was loaded for ``mv`` beyond the run's facts (``NOTHING_MORE``: nothing)."""
        more = self.more
        if more is None or more.key != (mv.account, mv.bank_tx_id):
            return NOTHING_MORE
        return more


@dataclass(frozen=True)
class Repeat:
    """The same bank movement again: already handled, nothing to do."""

    movement: Movement


@dataclass(frozen=True)
class Paired:
    movement: Movement
    matched: Matched
    balance_minor: int  # the contract's credit after


@dataclass(frozen=True)
class Queued:
    """Stored unmatched, for an operator, saying why."""

    movement: Movement
    why: Unmatched


@dataclass(frozen=True)
class Reversed:
    """``movement`` stored, and the credit it concerns taken back: the debit returning an
    earlier credit, or a credit arriving after the debit that returns it."""

    movement: Movement
    reversal: Reversal


Decision = Repeat | Paired | Queued | Reversed


@dataclass(frozen=True)
class Step:
    decisions: list[Decision]  # of the run's first len(decisions) movements, in order
    need: Need | None  # what the next one needs; None: the run is decided


def decide_run(movements: Sequence[Movement], facts: RunFacts, rules: Rules) -> Step:
    """Decide ``movements`` in order, keeping ``facts`` current, up to the first one that
    needs more facts; after a reversal the facts are stale and the rest needs them again."""
    decisions: list[Decision] = []
    for i, mv in enumerate(movements):
        decision = decide(mv, facts, rules)
        if isinstance(decision, Need):
            return Step(decisions, decision)
        decisions.append(decision)
        if isinstance(decision, Reversed) and i + 1 < len(movements):
            return Step(decisions, Need("run", movements[i + 1]))
    return Step(decisions, None)


def decide(mv: Movement, facts: RunFacts, rules: Rules) -> Decision | Need:
    """One movement, from ``facts``, which it then updates with what it decided."""
    if (mv.account, mv.bank_tx_id) in facts.known:
        return Repeat(mv)
    decision: Decision | Need
    if mv.amount_minor < 0:
        decision = _debit(mv, facts, rules)
    elif mv.amount_minor == 0:
        decision = Queued(mv, Unmatched("invalid-amount", "a movement of zero"))
    else:
        decision = _credit(mv, facts, rules)
    if isinstance(decision, Need):
        return decision
    facts.known.add((mv.account, mv.bank_tx_id))
    facts.more = None
    if isinstance(decision, Queued) and mv.amount_minor < 0:
        facts.waiting.add((mv.account, mv.currency, -mv.amount_minor))
    elif isinstance(decision, Paired):
        matched = decision.matched
        facts.balance[matched.contract] = decision.balance_minor
        for o in matched.outcomes:
            number = o.invoice.invoice_number
            facts.invoices[number] = dataclasses.replace(o.invoice, paid_minor=o.paid_minor)
            if o.settled:
                facts.settled.add(number)
    return decision


def _credit(mv: Movement, facts: RunFacts, rules: Rules) -> Decision | Need:
    more = facts.more_for(mv)
    if (mv.account, mv.currency, mv.amount_minor) in facts.waiting:
        # a reversal that arrived before its payment (statements imported out of order)
        if more.waiting is None:
            return Need("waiting", mv)
        this = BookedCredit.of(mv)
        for debit in more.waiting:
            if reverses(debit, this):
                return Reversed(
                    mv, reverse(this, debit.bank_tx_id, debit.booked_on, NEVER_PAIRED, rules)
                )
    by_ss = None
    if mv.ss is not None and mv.ss in facts.by_ss and facts.by_ss[mv.ss] not in facts.settled:
        by_ss = facts.invoices[facts.by_ss[mv.ss]]
    by_vs = facts.contracts.get(mv.vs) if mv.vs is not None else None
    named = more.named
    if named is None:
        lookup = Lookup(by_vs, by_ss, complete=False)
    else:
        lookup = Lookup(
            by_vs, by_ss, named.message_invoices, named.message_contracts, named.payer_contract
        )
    found = identify(mv, lookup, rules.phone_vs)
    if isinstance(found, Need):
        return found
    if isinstance(found, Unmatched):
        return Queued(mv, found)
    contract = found.contract.contract
    if contract not in facts.loaded:
        return Need("contract", mv, contract=contract)
    open_invoices = facts.open_of(contract)
    if found.first is not None:  # its current figures, if it is still open
        number = found.first.invoice_number
        first = next((i for i in open_invoices if i.invoice_number == number), None)
        found = Identified(found.contract, first, found.how)
    return _pair(mv, found, open_invoices, facts.balance.get(contract, 0), rules)


def _pair(
    mv: Movement,
    found: Identified,
    open_invoices: list[OpenInvoice],
    balance_minor: int,
    rules: Rules,
) -> Paired | Queued:
    """Allocate a payment to the contract identified, ``found.first`` first, within the
    contract's credit limit."""
    decision = match(
        mv, found.contract, open_invoices, found.first, rules.tolerance_of(mv.currency), found.how
    )
    if isinstance(decision, Matched):
        decision = within_credit_limit(decision, balance_minor)
    if isinstance(decision, Unmatched):
        return Queued(mv, decision)
    return Paired(mv, decision, balance_minor + decision.credit_minor)


def _debit(mv: Movement, facts: RunFacts, rules: Rules) -> Decision | Need:
    more = facts.more_for(mv)
    if more.reversible is None:
        return Need("reversible", mv)
    original = reversed_credit(mv, more.reversible)
    if original is None:
        return Queued(
            mv, Unmatched("debit", f"outgoing movement of {mv.amount_minor} is not a payment")
        )
    if more.reversal is None:
        return Need("reversal", mv, original=original)
    return Reversed(mv, reverse(original, mv.bank_tx_id, mv.booked_on, more.reversal, rules))


# --- the operators' manual assignment -------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """An operator's request: pay movement (account, bank_tx_id) to ``contract``, invoice
    ``invoice_number`` first if given, and perhaps confirm the payer's account for it."""

    account: str
    bank_tx_id: str
    contract: str
    invoice_number: str | None
    remember_payer: bool = False


@dataclass(frozen=True)
class AssignFacts:
    movement: Movement | None  # None: no such movement
    status: str | None
    contract: ContractInfo | None  # None: no such contract
    invoice: OpenInvoice | None  # the invoice named, whoever's, if it exists
    open_invoices: list[OpenInvoice]  # the contract's
    balance_minor: int  # the contract's credit


@dataclass(frozen=True)
class Refused:
    reason: str
    unknown: bool = False  # the movement, contract or invoice named does not exist


def assign(request: Assignment, facts: AssignFacts, rules: Rules) -> Paired | Refused:
    """Pair a queued payment by hand: to a contract (its open invoices oldest first) or to
    one invoice first. Refused, saying why, when it cannot be done."""
    mv, tx, contract = facts.movement, request.bank_tx_id, request.contract
    if mv is None:
        return Refused(f"no bank movement {tx} on account {request.account}", unknown=True)
    if facts.status != "unmatched":
        return Refused(f"movement {tx} is {facts.status}, not unmatched")
    if mv.amount_minor <= 0:
        return Refused(f"movement {tx} is a debit; only payments can be assigned")
    if facts.contract is None:
        return Refused(f"no contract {contract}", unknown=True)
    if facts.contract.currency != mv.currency:
        return Refused(
            f"payment is in {mv.currency}, contract {contract} is billed in "
            f"{facts.contract.currency}"
        )
    first = None
    if request.invoice_number is not None:
        if facts.invoice is None or facts.invoice.contract != contract:
            why = f"no invoice {request.invoice_number} of contract {contract}"
            return Refused(why, unknown=True)
        first = facts.invoice
    if request.remember_payer and not mv.counterparty_account:
        return Refused("the statement gives no payer account to remember")
    found = Identified(facts.contract, first if first and first.open_minor > 0 else None, "manual")
    decided = _pair(mv, found, facts.open_invoices, facts.balance_minor, rules)
    if isinstance(decided, Queued):
        return Refused(decided.why.reason)  # over the credit limit
    return decided
