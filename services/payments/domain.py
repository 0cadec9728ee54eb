"""Pairing a bank movement with invoices. Pure: facts in, a decision out.

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
Allocation (``match``): the rest goes to the contract's open invoices oldest first; one
payment can settle several; what is left becomes contract credit, kept per payment (a
"lot") and applied to the next invoice when it is issued. An invoice counts as settled
when what is still open is within the currency's rounding tolerance (a customer who pays
499.00 on a 499.40 invoice has paid).
Reversal (``reverses``): a debit that returns a credit we booked (same account, currency
and amount, and the same symbols or payer account) un-applies that payment.
Credit limit (``within_credit_limit``): a payment whose leftover would lift the contract's
credit over ``schemas.money.MAX_CREDIT_MINOR`` is not paired but queued (``credit-limit``)
for an operator to refund or assign: the sum of a contract's credit lots always fits its
bigint column, so later payments to the contract still apply.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date

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
    """What the service found in its tables for one movement."""

    contract_by_vs: ContractInfo | None
    invoice_by_ss: OpenInvoice | None
    # invoices (open or not) and contracts the message names, by number or symbol
    message_invoices: list[OpenInvoice] = field(default_factory=list)
    message_contracts: list[ContractInfo] = field(default_factory=list)
    payer_contract: ContractInfo | None = None


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
) -> Identified | Unmatched:
    """Which contract (and which invoice first) an incoming payment is for."""
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
