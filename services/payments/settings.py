"""Payments' own settings, besides the runtime's (``BILLING_*``, docs/configuration.md)."""

from __future__ import annotations

from services.runtime.settings import Settings


class PaymentsSettings(Settings):
    # A VS naming no contract that matches this is an old phone-number VS (VoIP credit):
    # unmatched, never guessed by message or payer account.
    phone_vs_pattern: str = r"(?:420|421)?[679][0-9]{8}"
