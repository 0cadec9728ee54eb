"""Invoicing's own settings, besides the runtime's (``BILLING_*``, docs/configuration.md)."""

from __future__ import annotations

from typing import Literal

from services.runtime.settings import Settings


class InvoicingSettings(Settings):
    # invoice numbers: YYYY + 6 digits, or YY + 8 digits past 999,999 invoices a year
    invoice_number_style: Literal["yyyy6", "yy8"] = "yyyy6"
    billing_chunk: int = 20_000  # contracts per transaction of a billing run
