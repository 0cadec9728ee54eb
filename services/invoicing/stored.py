"""Documents as invoicing stores them and as its events carry them: lines and the VAT
recapitulation as the JSON of ``schemas.events.InvoiceLine`` / ``VatRow`` (one form for the
tables and the events), the parties as JSON objects, and a stored invoice or credit note
read back into the ``documents.Document`` it was, so its PDF and ISDOC come out the same
bytes whenever they are made. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import TypeAdapter

from schemas.events import InvoiceLine, VatRow
from services.invoicing import documents, vat

LINES: TypeAdapter[list[InvoiceLine]] = TypeAdapter(list[InvoiceLine])
RECAP: TypeAdapter[list[VatRow]] = TypeAdapter(list[VatRow])


class StoredDocumentError(ValueError):
    """A stored row that cannot be made into a document (why, and which)."""


def line_model(line: documents.Line) -> InvoiceLine:
    return InvoiceLine(
        number=line.number,
        description=line.description,
        quantity=line.quantity,
        unit=line.unit,
        unit_price_minor=line.unit_price_minor,
        vat_category=line.vat_category,
        vat_rate=line.vat_rate,
        base_minor=line.base_minor,
        vat_minor=line.vat_minor,
        period_start=line.period[0] if line.period else None,
        period_end=line.period[1] if line.period else None,
        share=None if line.share == 1 else f"{line.share.numerator}/{line.share.denominator}",
        original_line=line.original_line,
    )


def line_of(m: InvoiceLine) -> documents.Line:
    period = (m.period_start, m.period_end) if m.period_start and m.period_end else None
    return documents.Line(
        number=m.number,
        description=m.description,
        quantity=m.quantity,
        unit=m.unit,
        unit_price_minor=m.unit_price_minor,
        vat_category=m.vat_category,
        vat_rate=m.vat_rate,
        base_minor=m.base_minor,
        vat_minor=m.vat_minor,
        period=period,
        share=Fraction(m.share) if m.share else Fraction(1),
        original_line=m.original_line,
    )


def recap_model(row: documents.RateTotal) -> VatRow:
    return VatRow(vat_rate=row.vat_rate, base_minor=row.base_minor, vat_minor=row.vat_minor)


def lines_json(lines: Sequence[documents.Line]) -> bytes:
    return LINES.dump_json([line_model(line) for line in lines])


def recap_json(recap: Sequence[documents.RateTotal]) -> bytes:
    return RECAP.dump_json([recap_model(r) for r in recap])


def notes_json(notes: Sequence[str]) -> str:
    return json.dumps(list(notes), ensure_ascii=False)


def lines_of(data: Any) -> tuple[documents.Line, ...]:
    """Lines from their stored JSON (text, or as asyncpg decoded the jsonb)."""
    models = (
        LINES.validate_json(data) if isinstance(data, str | bytes) else LINES.validate_python(data)
    )
    return tuple(line_of(m) for m in models)


def recap_of(data: Any) -> tuple[documents.RateTotal, ...]:
    models = (
        RECAP.validate_json(data) if isinstance(data, str | bytes) else RECAP.validate_python(data)
    )
    return tuple(documents.RateTotal(m.vat_rate, m.base_minor, m.vat_minor) for m in models)


# --- parties ------------------------------------------------------------------------------


def _address(a: documents.Address) -> dict[str, str]:
    return {
        "street": a.street,
        "building_number": a.building_number,
        "city": a.city,
        "postal_code": a.postal_code,
        "country": a.country,
    }


def supplier_data(s: documents.Supplier) -> dict[str, Any]:
    return {
        "name": s.name,
        "address": _address(s.address),
        "company_id": s.company_id,
        "tax_id": s.tax_id,
        "vat_id": s.vat_id,
        "vat_payer": s.vat_payer,
        "register_entry": s.register_entry,
        "bank_account": s.bank_account,
        "bic": s.bic,
        "email": s.email,
        "phone": s.phone,
    }


def supplier_row(s: documents.Supplier) -> tuple[str, str]:
    """The supplier's row: its id (a digest of its JSON) and the JSON."""
    text = json.dumps(supplier_data(s), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), text


def supplier_of(data: Mapping[str, Any]) -> documents.Supplier:
    return documents.Supplier(
        name=data["name"],
        address=documents.Address(**data["address"]),
        company_id=data["company_id"],
        tax_id=data["tax_id"],
        vat_id=data["vat_id"],
        vat_payer=data["vat_payer"],
        register_entry=data["register_entry"],
        bank_account=data["bank_account"],
        bic=data["bic"],
        email=data["email"],
        phone=data["phone"],
    )


def customer_of(data: Mapping[str, Any], country: str) -> documents.Customer:
    """The customer as issued; an address never given is empty (the document is refused
    then, naming it: ``documents.customer_problems``)."""
    a = data.get("address") or {}
    return documents.Customer(
        name=data.get("name") or "",
        address=documents.Address(
            street=a.get("street", ""),
            building_number=a.get("building_number", ""),
            city=a.get("city", ""),
            postal_code=a.get("postal_code", ""),
            country=a.get("country") or country,
        ),
        company_id=data.get("company_id"),
        tax_id=data.get("tax_id"),
        vat_id=data.get("vat_id"),
    )


# --- documents ----------------------------------------------------------------------------


def invoice_document(row: Mapping[str, Any], supplier: Mapping[str, Any]) -> documents.Document:
    """A stored invoice (its ``invoices`` row) and the supplier it was issued by, as the
    document it was. Raises ``StoredDocumentError`` for an invoice without one."""
    if row["lines"] is None:
        raise StoredDocumentError(
            f"invoice {row['invoice_number']} has no document: {row['no_document']}"
        )
    s = supplier_of(supplier)
    customer = _json(row["customer"])
    return documents.Document(
        kind="invoice",
        number=row["invoice_number"],
        contract=row["contract"],
        supplier=s,
        customer=customer_of(customer, s.address.country),
        language=row["language"],
        currency=row["currency"].strip(),
        issued_on=row["issued_on"],
        tax_point_on=row["tax_point_on"],
        due_on=row["due_on"],
        vs=row["vs"],
        ss=row["ss"],
        ks=None,
        treatment=row["treatment"],
        lines=lines_of(row["lines"]),
        recap=recap_of(row["recap"]),
        notes=tuple(_json(row["notes"])),
        prices_include_vat=bool(row["prices_include_vat"]),
    )


def credit_note_document(
    note: Mapping[str, Any], original: documents.Document
) -> documents.Document:
    """A stored credit note (its ``credit_notes`` row) on its original's document, as
    ``documents.build_credit_note`` made it."""
    return documents.Document(
        kind="credit_note",
        number=note["number"],
        contract=original.contract,
        supplier=original.supplier,
        customer=original.customer,
        language=original.language,
        currency=original.currency,
        issued_on=note["issued_on"],
        tax_point_on=note["issued_on"],
        due_on=note["issued_on"],
        vs=original.vs,
        ss=original.ss,
        ks=original.ks,
        treatment=original.treatment,
        lines=lines_of(note["lines"]),
        recap=recap_of(note["recap"]),
        notes=original.notes,
        original=documents.OriginalRef(original.number, original.issued_on, original.tax_point_on),
        reason=note["reason"],
        prices_include_vat=original.prices_include_vat,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def tax_point(issued_on: date, period_end: date) -> date:
    """The date of the taxable supply of a period's services: the end of the period, or
    the issue date when the invoice is issued before the period ends (billed ahead)."""
    return min(issued_on, period_end)


def no_vat_total(items: Sequence[documents.Item], country: str) -> int:
    """What ``items`` come to at their prices as given, with no VAT worked out: the
    amount of an invoice issued without a document."""
    unit = vat.ROUNDING[country].unit_minor if country in vat.ROUNDING else 1
    return sum(
        vat.round_minor(
            Decimal(i.unit_price_minor)
            * i.quantity
            * Decimal(i.share.numerator)
            / i.share.denominator,
            unit,
        )
        for i in items
    )
