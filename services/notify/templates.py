"""Rendering a message: subject, plain text, HTML and SMS, in the contact's language
(cs, sk, hu, en; anything else falls back to en), with money and dates formatted for the
locale by Babel ("1 234,50 Kč", "12 345 Ft", "15. 12. 2026").

Wording lives in ``templates/{kind}.{lang}.txt`` (first line ``Subject: ...``, then the
message) and ``templates/{kind}.{lang}.sms``. Every payment request (reminder, notice,
suspension) gets the payment details appended: account, VS and SS per invoice (in
Hungarian the invoice number to quote in the közlemény). The HTML part is ``email.html``
around the same paragraphs and details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

TEMPLATES = Path(__file__).with_name("templates")
LOCALES = {"cs": "cs_CZ", "sk": "sk_SK", "hu": "hu_HU", "en": "en_GB"}
LANGUAGES = tuple(LOCALES)
PAYMENT_KINDS = ("reminder", "notice", "suspend", "restrict")
DOCUMENT_KINDS = ("invoice", "credit_note")  # e-mailed with their PDF and ISDOC attached
VOIP_KINDS = ("voip_credit_low", "voip_credit_exhausted")  # a prepaid balance's announcements
KINDS = (*PAYMENT_KINDS, "restore", *DOCUMENT_KINDS, *VOIP_KINDS)
WHOLE_UNITS = {"HUF"}  # shown without decimals: "12 345 Ft"

LABELS: dict[str, dict[str, str]] = {
    "cs": {"details": "Platební údaje", "invoice": "Faktura", "due": "splatnost",
           "amount": "Částka", "account": "účet", "vs": "VS", "ss": "SS"},
    "sk": {"details": "Platobné údaje", "invoice": "Faktúra", "due": "splatnosť",
           "amount": "Suma", "account": "účet", "vs": "VS", "ss": "ŠS"},
    "hu": {"details": "Fizetési adatok", "invoice": "Számla", "due": "határidő",
           "amount": "Összeg", "account": "számlaszám", "vs": "ügyfélszám",
           "ss": "közlemény"},
    "en": {"details": "Payment details", "invoice": "Invoice", "due": "due",
           "amount": "Amount", "account": "account", "vs": "VS", "ss": "SS"},
}  # fmt: skip

_text = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
_html = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=True)


@dataclass(frozen=True)
class Rendered:
    language: str  # what was used, after falling back
    subject: str
    text: str
    html: str
    sms: str


def language_of(language: str | None) -> str:
    return language if language in LOCALES else "en"


def money(minor: int, currency: str, language: str) -> str:
    locale = LOCALES[language_of(language)]
    if currency in WHOLE_UNITS and minor % 100 == 0:
        return format_currency(
            minor // 100, currency, locale=locale, format="#,##0\u00a0¤", currency_digits=False
        )
    return format_currency(minor / 100, currency, locale=locale)


def day(value: date | str, language: str) -> str:
    d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    return format_date(d, format="medium", locale=LOCALES[language_of(language)])


def _context(kind: str, language: str, context: dict[str, Any], company: str) -> dict[str, Any]:
    ctx = dict(context)
    currency = ctx.get("currency") or "CZK"
    invoices = [
        {
            **inv,
            "amount": money(inv["open_minor"], inv.get("currency", currency), language),
            "due": day(inv["due_on"], language),
        }
        for inv in ctx.get("invoices", [])
    ]
    oldest = min(invoices, key=lambda i: str(i["due_on"]), default=None)
    ctx.update(
        kind=kind,
        company=company,
        invoices=invoices,
        overdue=money(ctx.get("overdue_minor", 0), currency, language),
        due=oldest["due"] if oldest else "",
        vs=oldest["vs"] if oldest else ctx.get("contract", ""),
        ss=oldest["ss"] if oldest else "",
        account=ctx.get("account", ""),
        labels=LABELS[language],
        language=language,
    )
    if kind in DOCUMENT_KINDS:  # an invoice's or credit note's own amount and due date
        ctx.update(
            number=ctx.get("number") or ctx.get("request_id", ""),
            amount=money(ctx.get("amount_minor", 0), currency, language),
            due_date=day(ctx["due_on"], language) if ctx.get("due_on") else "",
        )
    if kind in VOIP_KINDS:
        ctx.update(
            balance=money(ctx.get("balance_minor", 0), currency, language),
            threshold=money(ctx.get("threshold_minor", 0), currency, language),
        )
    return ctx


def _details_text(ctx: dict[str, Any]) -> str:
    lab, account = ctx["labels"], ctx["account"]
    lines = [f"{lab['details']}:"]
    for inv in ctx["invoices"]:
        number = inv["invoice_number"]
        lines.append(f"  {lab['invoice']} {number}, {lab['due']} {inv['due']}: {inv['amount']}")
        if ctx["language"] == "hu":  # no symbols in Hungary: quote the invoice number
            lines.append(f"    {lab['account']} {account}, {lab['ss']}: {number}")
        else:
            symbols = f"{lab['vs']} {inv['vs']}, {lab['ss']} {inv['ss']}"
            lines.append(f"    {lab['account']} {account}, {symbols}")
    return "\n".join(lines)


def render(
    kind: str, language: str | None, context: dict[str, Any], company: str = "ISP"
) -> Rendered:
    """Every part of one message. ``context`` is the dunning request's data plus
    ``customer_name``; unknown languages fall back to en."""
    lang = language_of(language)
    try:
        template = _text.get_template(f"{kind}.{lang}.txt")
    except TemplateNotFound:
        lang = "en"
        template = _text.get_template(f"{kind}.en.txt")
    ctx = _context(kind, lang, context, company)
    first, _, body = template.render(**ctx).partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"template {template.name} must start with 'Subject: '")
    body = body.strip("\n")
    paragraphs = [p.replace("\n", " ") for p in body.split("\n\n") if p.strip()]
    payment = kind in PAYMENT_KINDS and bool(ctx["invoices"])
    text = body + ("\n\n" + _details_text(ctx) if payment else "") + "\n"
    html = _html.get_template("email.html").render(
        **ctx, subject=first.removeprefix("Subject: ").strip(), paragraphs=paragraphs,
        payment=payment,
    )  # fmt: skip
    sms = _text.get_template(f"{kind}.{lang}.sms").render(**ctx).strip()
    return Rendered(lang, first.removeprefix("Subject: ").strip(), text, html, sms)
