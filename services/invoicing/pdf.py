"""A document as PDF in its language (cs, sk, hu, en), with a payment QR code: Jinja2
renders templates/document.html, WeasyPrint lays it out with DejaVu Sans (Debian's
fonts-dejavu-core; tools/system-deps.sh installs it and Pango).

Byte for byte reproducible from the same document: the PDF's dates are the issue date
(dcterms.created / modified in the HTML), its file identifier is derived from the supplier
and the number, the QR code is an SVG built from the document alone, fonts are subset the
same way each time, and nothing reads a clock. (The bytes do depend on the WeasyPrint,
Pango and font versions, which requirements.lock and the Debian release pin.)
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import segno
from babel import Locale
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.invoicing.documents import Document
from services.runtime import payqr

TEMPLATES = Path(__file__).parent / "templates"
LOCALES = {"cs": "cs_CZ", "sk": "sk_SK", "hu": "hu_HU", "en": "en_GB"}
COUNTRY_NAMES = {
    "cs": {"CZ": "Česká republika", "SK": "Slovensko", "HU": "Maďarsko"},
    "sk": {"CZ": "Česká republika", "SK": "Slovenská republika", "HU": "Maďarsko"},
    "hu": {"CZ": "Csehország", "SK": "Szlovákia", "HU": "Magyarország"},
    "en": {"CZ": "Czech Republic", "SK": "Slovakia", "HU": "Hungary"},
}
# How long an MNB QR code on a HUF invoice stays valid: the due date plus this, to the
# end of that day in Budapest (a bank app refuses an expired code).
HCT_VALID_AFTER_DUE = timedelta(days=30)


@lru_cache(maxsize=1)
def wording() -> dict[str, Any]:
    with (TEMPLATES / "wording.toml").open("rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )


def day(d: date, language: str) -> str:
    if language == "hu":
        return f"{d.year}. {d.month:02d}. {d.day:02d}."
    if language == "en":
        return f"{d.day} {d:%b} {d.year}"
    return f"{d.day}. {d.month}. {d.year}"


def money(minor: int, currency: str, language: str) -> str:
    locale = Locale.parse(LOCALES[language])
    pattern = locale.currency_formats["standard"].pattern
    if currency == "HUF" and minor % 100 == 0:  # whole forints, as HU invoices state them
        pattern = pattern.replace(".00", "")
    text: str = format_currency(
        Decimal(minor) / 100, currency, format=pattern, locale=locale, currency_digits=False
    )
    return text


def payment_code(doc: Document) -> tuple[str, str] | None:
    """The payment QR code's format and payload for an invoice; None for a credit note."""
    if doc.kind != "invoice":
        return None
    budapest = ZoneInfo("Europe/Budapest")
    valid_until = datetime.combine(doc.due_on + HCT_VALID_AFTER_DUE, time(23, 59, 59), budapest)
    return payqr.for_payment(
        doc.supplier.bank_account,
        doc.currency,
        doc.total_minor,
        doc.vs,
        doc.ss,
        doc.due_on,
        doc.supplier.name,
        ks=doc.ks,
        bic=doc.supplier.bic,
        message=doc.number,
        hct_valid_until=valid_until,
    )


def html(doc: Document) -> str:
    language = doc.language
    w = wording()[language]
    code = payment_code(doc)
    qr = None
    if code is not None:
        svg = segno.make(code[1], error="m", micro=False).svg_inline(scale=4, border=2)
        qr = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    if doc.kind == "credit_note":
        title = w["title_credit_note"]
    elif doc.treatment == "not_vat_payer":
        title = w["title_invoice_not_vat"]
    else:
        title = w["title_invoice"]
    return (
        _environment()
        .get_template("document.html")
        .render(
            doc=doc,
            w=w,
            title=title,
            credit=doc.kind == "credit_note",
            sign=doc.sign,
            iban=payqr.iban(doc.supplier.bank_account),
            qr=qr,
            country_names=COUNTRY_NAMES[language],
            day=lambda d: day(d, language),
            money=lambda minor: money(minor, doc.currency, language),
            quantity=lambda q: format_decimal(q, locale=LOCALES[language]),
            rate=lambda r: w["no_vat"] if r is None else f"{r.normalize():f} %",
        )
    )


def render(doc: Document) -> bytes:
    """The PDF of ``doc``: the same bytes for the same document."""
    from weasyprint import HTML  # loads Pango through cffi: only when a PDF is made

    identifier = hashlib.sha256(
        f"{doc.supplier.company_id}:{doc.kind}:{doc.number}".encode()
    ).hexdigest()[:32]
    pdf: bytes = HTML(string=html(doc), base_url=str(TEMPLATES)).write_pdf(
        pdf_identifier=identifier.encode(), uncompressed_pdf=False
    )
    return pdf
