"""What a billing run bills each contract: its invoice's lines, VAT recapitulation, tax
point and treatment, worked out once for every contract billed alike (a million contracts
on a handful of tariffs share a handful of bills) and kept as the columns and the event
JSON the run writes. Pure: no I/O; the supplier and the period come from the run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from services.invoicing import billed, documents, stored, vat
from services.invoicing.domain import DueRule, validate_period
from services.runtime.db import Jsonb
from services.runtime.errors import BadInput

# invoice.issued's document fields for an invoice without a document
NO_DOCUMENT = b',"tax_point_on":null,"lines":null,"vat":null'
# The invoice columns a bill fills, in the order of ``Bill.columns``.
COLUMNS = (
    "language",
    "tax_point_on",
    "treatment",
    "prices_include_vat",
    "lines",
    "recap",
    "notes",
    "no_document",
)


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract as a billing run reads it (queries.sql: billable_contracts)."""

    contract: str
    active: bool
    monthly_fee_minor: int
    currency: str
    due_rule: DueRule
    terms: str | None  # billed.Terms as JSON; None: the monthly price is one tariff service
    country: str  # the customer's
    language: str
    has_vat_id: bool
    customer: str  # the customer as documents name it, JSON


@dataclass(frozen=True)
class Bill:
    charges_minor: int  # what the lines come to, late fees apart (0: nothing to bill)
    columns: tuple[object, ...]  # COLUMNS
    tail: bytes  # invoice.issued's document fields, JSON: ',"tax_point_on":...,"vat":[...]'
    document: tuple[tuple[documents.Line, ...], tuple[documents.RateTotal, ...]] | None


class Bills:
    """The bills of one run (one supplier, period and issue date), made once per kind."""

    def __init__(
        self, supplier: documents.Supplier, supplier_id: str, period: str, issued_on: date
    ):
        year, month = validate_period(period)
        self.supplier = supplier
        self.supplier_id = supplier_id
        self.year, self.month = year, month
        self.tax_point_on = stored.tax_point(issued_on, billed.month_bounds(year, month)[1])
        self.made: dict[tuple[object, ...], Bill] = {}

    def of(
        self,
        c: Contract,
        fee_minor: int,
        one_offs: Sequence[str] = (),
        calls: Sequence[billed.CallGroup] = (),
    ) -> Bill:
        """``c``'s bill this period, with ``fee_minor`` of late fees, the one-off items
        waiting for it (their JSON) and its unbilled postpaid calls."""
        key = (c.terms or c.monthly_fee_minor, c.language, c.country, c.has_vat_id, c.currency,
               fee_minor, tuple(one_offs), tuple(calls))  # fmt: skip
        bill = self.made.get(key)
        if bill is None:
            try:
                bill = self.made[key] = self._make(c, fee_minor, one_offs, calls)
            except (documents.DocumentError, ValueError) as e:
                raise BadInput(f"contract {c.contract}: cannot be invoiced: {e}") from None
        return bill

    def _make(
        self,
        c: Contract,
        fee_minor: int,
        one_offs: Sequence[str],
        calls: Sequence[billed.CallGroup] = (),
    ) -> Bill:
        language = c.language if c.language in vat.LANGUAGES else "en"
        terms = (
            billed.Terms.model_validate_json(c.terms)
            if c.terms
            else billed.legacy_tariff(c.monthly_fee_minor, language)
        )
        items = billed.period_items(terms, self.year, self.month)
        items += [billed.OneOff.model_validate_json(text).item() for text in one_offs]
        if calls:  # rated without VAT: plus the standard rate where prices include it
            home = self.supplier.address.country
            rate = (
                vat.rate(home, "standard", self.tax_point_on) if terms.prices_include_vat else None
            )
            items += billed.call_items(calls, language, rate)
        if not items:  # nothing billed this period: no invoice, whatever the fees
            return Bill(0, (), b"", None)
        if fee_minor:
            items.append(billed.late_fee_item(fee_minor, language))
        return self.bill(
            items,
            c.country,
            c.has_vat_id,
            c.currency,
            language,
            terms.prices_include_vat,
            fee_minor,
        )

    def bill(
        self,
        items: list[documents.Item],
        country: str,
        has_vat_id: bool,
        currency: str,
        language: str,
        prices_include_vat: bool,
        fee_minor: int = 0,
        tax_point_on: date | None = None,
    ) -> Bill:
        """The bill of ``items`` for a customer in ``country``; one the supplier cannot
        issue a document for (a foreign currency, a VAT treatment not supported yet) asks
        for the items' prices as given, without lines, and says why."""
        s = self.supplier
        home = s.address.country
        tax_point = tax_point_on or self.tax_point_on
        why = None
        if currency != vat.CURRENCY.get(home):  # type: ignore[call-overload]
            why = (
                f"in {currency}: a supplier in {home} issues documents in "
                f"{vat.CURRENCY.get(home)} (another currency needs an exchange rate for its "  # type: ignore[call-overload]
                "VAT, not supported yet)"
            )
        else:
            try:
                treatment = vat.treatment(home, s.vat_payer, country, "VAT" if has_vat_id else None)
            except vat.VatError as e:
                why = str(e)
        if why is not None:
            total = stored.no_vat_total(items, home)
            empty = (language, None, None, prices_include_vat, None, None, None, why)
            return Bill(total - fee_minor, empty, NO_DOCUMENT, None)
        lines, recap = documents.invoice_lines(
            home, treatment, tax_point, items, prices_include_vat
        )
        notes = vat.legal_notes(home, treatment, language)  # type: ignore[arg-type]
        lines_text, recap_text = stored.lines_json(lines), stored.recap_json(recap)
        total = sum(r.total_minor for r in recap)
        columns: tuple[object, ...] = (
            language,
            tax_point,
            treatment,
            prices_include_vat,
            Jsonb(lines_text.decode()),
            Jsonb(recap_text.decode()),
            Jsonb(stored.notes_json(notes)),
            None,
        )
        tail = (
            b',"tax_point_on":"' + tax_point.isoformat().encode() + b'","lines":' + lines_text
            + b',"vat":' + recap_text
        )  # fmt: skip
        return Bill(total - fee_minor, columns, tail, (lines, recap))
