"""ISDOC 6.0.2: every document written here is validated against the official schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from lxml import etree

from services.invoicing import documents as d
from services.invoicing import isdoc
from tests.unit.document_samples import CUSTOMERS, invoice, non_payer_invoice

NS = {"i": isdoc.NS}


def written(doc: d.Document) -> etree._Element:
    """The document's ISDOC, validated once more here (the writer validates too)."""
    xml = isdoc.write(doc)
    isdoc.validate(xml)
    return etree.fromstring(xml)


def text(tree: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in tree.xpath(path, namespaces=NS)]


@pytest.mark.parametrize("country", ["CZ", "SK", "HU"])
def test_an_invoice_of_each_country_validates(country: str) -> None:
    doc = invoice(country)
    tree = written(doc)
    assert text(tree, "/i:Invoice/i:DocumentType") == ["1"]
    assert text(tree, "/i:Invoice/i:ID") == ["2026000001"]
    assert text(tree, "/i:Invoice/i:TaxPointDate") == ["2026-12-31"]
    assert text(tree, "//i:Details/i:VariableSymbol") == ["1001"]
    assert text(tree, "//i:Details/i:SpecificSymbol") == ["2026000001"]
    assert text(tree, "/i:Invoice/i:LegalMonetaryTotal/i:PayableAmount") == [
        f"{doc.total_minor / 100:.2f}"
    ]
    assert text(tree, "//i:TaxSubTotal/i:TaxAmount") == [
        f"{r.vat_minor / 100:.2f}" for r in doc.recap
    ]
    assert len(tree.xpath("//i:InvoiceLine", namespaces=NS)) == len(doc.lines)


def test_a_credit_note_validates_refers_to_its_invoice_and_is_in_positive_amounts() -> None:
    original = invoice("CZ")
    note = d.build_credit_note(
        original, "D2027000001", date(2027, 1, 10), "Výpadek služby", [d.CreditPart(1, 10_000)]
    )
    tree = written(note)
    assert text(tree, "/i:Invoice/i:DocumentType") == ["2"]
    ref = "/i:Invoice/i:OriginalDocumentReferences/i:OriginalDocumentReference"
    assert text(tree, f"{ref}/i:ID") == ["2026000001"]
    assert text(tree, f"{ref}/i:UUID") == [isdoc.document_uuid(original)]
    assert text(tree, "//i:InvoiceLine/i:OriginalDocumentReference/i:LineID") == ["1"]
    assert text(tree, "/i:Invoice/i:TaxPointDate") == []  # ISDOC rules: none on a credit note
    assert text(tree, "/i:Invoice/i:PaymentMeans") == []
    assert text(tree, "/i:Invoice/i:LegalMonetaryTotal/i:PayableAmount") == ["121.00"]
    assert "Důvod opravy: Výpadek služby" in text(tree, "/i:Invoice/i:Note")[0]
    full = d.build_credit_note(original, "D2027000002", date(2027, 1, 10), "Storno")
    assert text(written(full), "//i:LegalMonetaryTotal/i:PayableAmount") == [
        f"{original.total_minor / 100:.2f}"
    ]


def test_reverse_charge_and_non_payer_documents_validate() -> None:
    business = replace(CUSTOMERS["HU"], company_id="01-09-654321", vat_id="HU87654321")
    tree = written(invoice("SK", customer=business, language="en"))
    assert text(tree, "//i:TaxSubTotal/i:TaxCategory/i:VATApplicable") == ["false"]
    assert "Prenesenie daňovej povinnosti" in text(tree, "/i:Invoice/i:Note")[0]
    assert text(tree, "//i:AccountingCustomerParty//i:CompanyID") == ["HU87654321"]
    doc = non_payer_invoice()
    tree = written(doc)
    assert text(tree, "/i:Invoice/i:VATApplicable") == ["false"]
    assert text(tree, "/i:Invoice/i:TaxPointDate") == []


def test_the_same_document_gives_the_same_bytes() -> None:
    assert isdoc.write(invoice("HU")) == isdoc.write(invoice("HU"))
    assert isdoc.document_uuid(invoice("HU")) != isdoc.document_uuid(invoice("HU", number="2"))


def test_a_document_the_schema_refuses_is_named_with_its_line() -> None:
    xml = isdoc.write(invoice("CZ"))
    broken = xml.replace(b"<DocumentType>1</DocumentType>", b"<DocumentType>9</DocumentType>")
    with pytest.raises(isdoc.IsdocError, match=r"line 3: .*DocumentType"):
        isdoc.validate(broken)
    with pytest.raises(isdoc.IsdocError, match="not well-formed"):
        isdoc.validate(xml[:200])
