"""VoIP's own settings, besides the runtime's (``BILLING_*``, docs/configuration.md): the
price list, the PBX's time zone and country, and the prepaid credit's low threshold."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.runtime.settings import Settings

DEMO_PRICE_LIST = Path(__file__).with_name("pricelist.demo.csv")


class VoipSettings(Settings):
    # The price list (CSV, docs/usage.md#price-list); unset: the demo list shipped here.
    voip_price_list: Path | None = None
    # The time zone the PBX writes its CDR times in (Asterisk: local time unless usegmtime).
    voip_pbx_tz: str = "Europe/Prague"
    # The country prefix of a national number in a CDR or a lookup (601123456 -> 420...).
    voip_country_prefix: str = "420"
    # Below this balance (minor units, per currency) voip.credit_low is published once.
    voip_credit_low_minor: dict[str, int] = Field(
        default_factory=lambda: {"CZK": 5000, "EUR": 200, "HUF": 50000}
    )

    def price_list_path(self) -> Path:
        return self.voip_price_list or DEMO_PRICE_LIST
