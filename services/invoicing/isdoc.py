"""ISDOC 6.0.2, the Czech e-invoice format: an invoice (DocumentType 1) or a credit note
(DocumentType 2, with its OriginalDocumentReference) as XML, validated against the official
schema in schemas/isdoc/ before it is returned. No I/O beyond reading that schema once.

The same document gives the same bytes: the UUID is derived from the supplier and the
number (uuid5), elements are written in a fixed order, and nothing reads a clock.

Following ISDOC's rules (isdoc/schema, doc/pravidla-6.0.2.xml): a credit note is in
positive amounts (its type says subtract); it carries no TaxPointDate (its tax point is when
the customer receives it); a document of a supplier who is not a VAT payer is no tax
document and carries no TaxPointDate either.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lxml import etree

import schemas
from services.invoicing.documents import Document, Line, Party
from services.runtime import payqr

NS = "http://isdoc.cz/namespace/2013"
VERSION = "6.0.2"
SCHEMA = Path(schemas.__file__).parent / "isdoc" / "isdoc-invoice-6.0.2.xsd"
COUNTRY_NAMES = {"CZ": "Česká republika", "SK": "Slovenská republika", "HU": "Magyarország"}
UNIT_CODES = {
    "month": "MON",
    "day": "DAY",
    "piece": "C62",
    "hour": "HUR",
    "service": "E48",
    "lump": "LS",
}  # UN/ECE Recommendation 20 codes


class IsdocError(ValueError):
    """A document the schema refuses: each message with its line in the XML."""


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def validate(xml: bytes) -> None:
    """Raise IsdocError naming every place the XML breaks the ISDOC 6.0.2 schema."""
    try:
        tree = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as e:
        raise IsdocError(f"not well-formed XML: {e}") from None
    schema = _schema()
    if not schema.validate(tree):
        raise IsdocError("; ".join(f"line {err.line}: {err.message}" for err in schema.error_log))


def document_uuid(doc: Document) -> str:
    return _uuid(doc.supplier.company_id, doc.kind, doc.number)


def _uuid(company_id: str, kind: str, number: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"isdoc:{company_id}:{kind}:{number}")).upper()


def write(doc: Document) -> bytes:
    """The ISDOC XML of ``doc``, validated."""
    root = etree.Element(f"{{{NS}}}Invoice", nsmap={None: NS}, version=VERSION)
    add = _adder(root)
    credit = doc.kind == "credit_note"
    vat_payer = doc.treatment != "not_vat_payer"
    add("DocumentType", "2" if credit else "1")
    add("ID", doc.number)
    add("UUID", document_uuid(doc))
    add("IssuingSystem", "isp-billing")
    add("IssueDate", doc.issued_on.isoformat())
    if vat_payer and not credit:
        add("TaxPointDate", doc.tax_point_on.isoformat())
    add("VATApplicable", _bool(vat_payer))
    # The customer agrees to electronic invoices in the contract: it is the reference.
    add("ElectronicPossibilityAgreementReference", f"contract {doc.contract}")
    notes = ([f"{_REASON[doc.language]}: {doc.reason}"] if doc.reason else []) + list(doc.notes)
    if notes:
        add("Note", " ".join(notes), languageID=doc.language)
    add("LocalCurrencyCode", doc.currency)
    add("CurrRate", "1")
    add("RefCurrRate", "1")
    _party(add("AccountingSupplierParty"), doc.supplier, None, vat_payer)
    _party(add("AccountingCustomerParty"), doc.customer, doc.contract, True)
    if doc.original is not None:
        ref = etree.SubElement(
            add("OriginalDocumentReferences"), _q("OriginalDocumentReference"), id="original"
        )
        _adder(ref)("ID", doc.original.number)
        _adder(ref)("IssueDate", doc.original.issued_on.isoformat())
        _adder(ref)("UUID", _uuid(doc.supplier.company_id, "invoice", doc.original.number))
    lines = add("InvoiceLines")
    for line in doc.lines:
        _line(etree.SubElement(lines, _q("InvoiceLine")), line, vat_payer, doc.prices_include_vat)
    tax_total = add("TaxTotal")
    for row in doc.recap:
        sub = _adder(etree.SubElement(tax_total, _q("TaxSubTotal")))
        inclusive = row.base_minor + row.vat_minor
        for name, value in (
            ("TaxableAmount", row.base_minor),
            ("TaxAmount", row.vat_minor),
            ("TaxInclusiveAmount", inclusive),
            ("AlreadyClaimedTaxableAmount", 0),
            ("AlreadyClaimedTaxAmount", 0),
            ("AlreadyClaimedTaxInclusiveAmount", 0),
            ("DifferenceTaxableAmount", row.base_minor),
            ("DifferenceTaxAmount", row.vat_minor),
            ("DifferenceTaxInclusiveAmount", inclusive),
        ):
            sub(name, _money(value))
        category = _adder(sub("TaxCategory"))
        category("Percent", _percent(row.vat_rate))
        category("VATApplicable", _bool(row.vat_rate is not None))
    _adder(tax_total)("TaxAmount", _money(doc.vat_minor))
    total = _adder(add("LegalMonetaryTotal"))
    for name, value in (
        ("TaxExclusiveAmount", doc.base_minor),
        ("TaxInclusiveAmount", doc.total_minor),
        ("AlreadyClaimedTaxExclusiveAmount", 0),
        ("AlreadyClaimedTaxInclusiveAmount", 0),
        ("DifferenceTaxExclusiveAmount", doc.base_minor),
        ("DifferenceTaxInclusiveAmount", doc.total_minor),
        ("PaidDepositsAmount", 0),
        ("PayableAmount", doc.total_minor),
    ):
        total(name, _money(value))
    if not credit:  # a credit note asks for no payment
        _payment(add("PaymentMeans"), doc)
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(xml)
    return xml


_REASON = {
    "cs": "Důvod opravy",
    "sk": "Dôvod opravy",
    "hu": "A helyesbítés oka",
    "en": "Reason for correction",
}


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


class _Adder:
    def __init__(self, parent: etree._Element) -> None:
        self.parent = parent

    def __call__(self, name: str, text: str | None = None, **attrs: str) -> etree._Element:
        element = etree.SubElement(self.parent, _q(name), attrs)
        if text is not None:
            element.text = text
        return element


def _adder(parent: etree._Element) -> _Adder:
    return _Adder(parent)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _money(minor: int) -> str:
    return f"{Decimal(minor) / 100:.2f}"


def _percent(rate: Decimal | None) -> str:
    return f"{rate or 0:.2f}"


def _party(parent: etree._Element, party: Party, user_id: str | None, vat_scheme: bool) -> None:
    add = _adder(etree.SubElement(parent, _q("Party")))
    ident = _adder(add("PartyIdentification"))
    if user_id:
        ident("UserID", user_id)
    ident("ID", party.company_id or "")
    _adder(add("PartyName"))("Name", party.name)
    address = _adder(add("PostalAddress"))
    a = party.address
    address("StreetName", a.street)
    address("BuildingNumber", a.building_number)
    address("CityName", a.city)
    address("PostalZone", a.postal_code)
    country = _adder(address("Country"))
    country("IdentificationCode", a.country)
    country("Name", COUNTRY_NAMES.get(a.country, a.country))
    schemes: list[tuple[str, str]] = []
    if party.vat_id and vat_scheme:
        schemes.append((party.vat_id, "VAT"))
    if party.tax_id and party.tax_id != party.vat_id:
        schemes.append((party.tax_id, "TIN"))
    for company_id, scheme in schemes:
        tax = _adder(add("PartyTaxScheme"))
        tax("CompanyID", company_id)
        tax("TaxScheme", scheme)
    register = getattr(party, "register_entry", None)
    if register:
        _adder(add("RegisterIdentification"))("Preformatted", register)
    email, phone = getattr(party, "email", None), getattr(party, "phone", None)
    if email or phone:
        contact = _adder(add("Contact"))
        if phone:
            contact("Telephone", phone)
        if email:
            contact("ElectronicMail", email)


def _line(element: etree._Element, line: Line, vat_payer: bool, from_above: bool) -> None:
    add = _adder(element)
    add("ID", str(line.number))
    if line.original_line is not None:
        _adder(add("OriginalDocumentReference", ref="original"))("LineID", str(line.original_line))
    add("InvoicedQuantity", _quantity(line.quantity), unitCode=UNIT_CODES[line.unit])
    add("LineExtensionAmount", _money(line.base_minor))
    add("LineExtensionAmountTaxInclusive", _money(line.total_minor))
    add("LineExtensionTaxAmount", _money(line.vat_minor))
    # ISDOC's rule: the line's amount counts; the unit price is that amount per unit (a
    # prorated line's is the prorated price), to four places.
    add("UnitPrice", _per_unit(line.base_minor, line.quantity))
    add("UnitPriceTaxInclusive", _per_unit(line.total_minor, line.quantity))
    category = _adder(add("ClassifiedTaxCategory"))
    category("Percent", _percent(line.vat_rate))
    # from the base ("zdola"), or out of prices given with VAT ("shora")
    category("VATCalculationMethod", "1" if from_above else "0")
    category("VATApplicable", _bool(vat_payer and line.vat_rate is not None))
    if line.period is not None:
        start, end = line.period
        share = f" ({line.share.numerator}/{line.share.denominator})" if line.share != 1 else ""
        add("Note", f"{start.isoformat()}/{end.isoformat()}{share}")
    _adder(add("Item"))("Description", line.description)


def _quantity(q: Decimal) -> str:
    text = format(q.normalize(), "f")
    return text


def _per_unit(minor: int, quantity: Decimal) -> str:
    return f"{(Decimal(minor) / 100 / quantity).quantize(Decimal('0.0001'))}"


def _payment(parent: etree._Element, doc: Document) -> None:
    payment = _adder(etree.SubElement(parent, _q("Payment")))
    payment("PaidAmount", _money(doc.total_minor))
    payment("PaymentMeansCode", "42")  # payment to a bank account
    details = _adder(payment("Details"))
    details("PaymentDueDate", doc.due_on.isoformat())
    account = doc.supplier.bank_account.strip()
    number, _, bank = account.partition("/") if "/" in account else (account, "", "")
    details("ID", number)
    details("BankCode", bank)
    details("Name", "")
    details("IBAN", payqr.iban(account))
    details("BIC", doc.supplier.bic or "")
    details("VariableSymbol", doc.vs)
    if doc.ks:
        details("ConstantSymbol", doc.ks)
    if doc.ss:
        details("SpecificSymbol", doc.ss)
