"""Render a message (subject + plain-text body) for a kind and language, falling back to en."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

TEMPLATES = Path(__file__).with_name("templates")
LOCALES = {"cs": "cs_CZ", "sk": "sk_SK", "hu": "hu_HU", "en": "en_GB"}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def money(minor: int, currency: str, language: str) -> str:
    return format_currency(minor / 100, currency, locale=LOCALES.get(language, "en_GB"))


def render(kind: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    try:
        template = _env.get_template(f"{kind}.{language}.txt")
    except TemplateNotFound:
        template = _env.get_template(f"{kind}.en.txt")
        language = "en"
    ctx = dict(context)
    currency = ctx.get("currency") or "CZK"
    ctx["overdue"] = money(ctx.get("overdue_minor", 0), currency, language)
    ctx["invoices"] = [
        {**inv, "amount": money(inv["open_minor"], inv["currency"], language)}
        for inv in ctx.get("invoices", [])
    ]
    text = template.render(**ctx)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"template {template.name} must start with 'Subject: '")
    return first.removeprefix("Subject: ").strip(), body.lstrip("\n")
