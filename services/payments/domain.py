"""Pairing a bank movement with invoices. Pure: facts in, a decision out.

Rules, in order (each allocation records the rule that made it):
1. ``ss``: the specific symbol names an open invoice of the contract the VS names (or, with
   no VS, any open invoice): that invoice first.
2. ``vs-oldest``: the rest goes to the contract's open invoices, oldest due date first; one
   payment can settle several.
3. What is left becomes contract credit, applied to the next invoice when it is issued.
An invoice counts as settled when what is still open is within the currency's rounding
tolerance (a customer who pays 499.00 on a 499.40 invoice has paid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


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
) -> Matched | Unmatched:
    """Decide where an incoming movement goes.

    ``open_invoices`` are the open invoices of ``contract``; ``invoice_by_ss`` is the open
    invoice the SS names, if any (possibly of another contract)."""
    if mv.amount_minor <= 0:
        return Unmatched("debit", f"outgoing movement of {mv.amount_minor} is not a payment")
    if mv.vs is None and mv.ss is None:
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
    rule = "vs-oldest"
    first = None
    if invoice_by_ss is not None and invoice_by_ss.contract == contract.contract:
        first = invoice_by_ss
        available -= alloc.allocate(first, available, "ss")
        rule = "ss"
    for inv in sorted(open_invoices, key=lambda i: (i.due_on, i.invoice_number)):
        if available <= 0:
            break
        if first is not None and inv.invoice_number == first.invoice_number:
            continue
        available -= alloc.allocate(inv, available, "vs-oldest")
    return Matched(contract.contract, alloc.allocations, alloc.outcomes, available, rule)


def apply_credit(credit_minor: int, invoice: OpenInvoice, tolerance: int) -> CreditApplied:
    """A new invoice of a contract that has credit is paid from it at once."""
    if credit_minor <= 0:
        return CreditApplied(None, None, credit_minor)
    alloc = _Allocator(tolerance)
    used = alloc.allocate(invoice, credit_minor, "credit")
    if used == 0:
        return CreditApplied(None, None, credit_minor)
    return CreditApplied(alloc.allocations[0], alloc.outcomes[0], credit_minor - used)
