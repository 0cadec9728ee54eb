"""VAT as data: rates per country and category with their validity, who charges VAT, reverse
charge and rounding. Pure: no I/O, no clock; the caller passes the tax point date.

Sources of the rates (checked 2026; docs/invoices.md has the table and the reasoning):

- CZ: zákon č. 235/2004 Sb. § 47 as amended by the consolidation package (zákon
  č. 349/2023 Sb.): from 2024-01-01 the reduced rates of 15 % and 10 % merged into one of
  12 %, books moved to 0 %, the standard rate stays 21 % (effglobal.com/blog/czech-republic-
  consolidation-of-reduced-vat-rates, vatupdate.com 2023-11-10). The 10 % second reduced rate
  ran from 2015-01-01.
- SK: zákon č. 222/2004 Z. z. § 27 as amended in October 2024 (signed 2024-10-18): from
  2025-01-01 standard 23 % (was 20 %), the 10 % rate abolished, a new reduced 19 %, and 5 %
  kept (taxnews.ey.com/news/2024-1947; crowe.com/sk 2024; the 5 % rate since 2023-01-01 per
  Baker McKenzie's VAT rate table).
- HU: 2007. évi CXXVII. törvény (Áfa tv.) 82. § and annex 3: 27 % standard since
  2012-01-01, 18 % and 5 % reduced; internet access moved to 5 % on 2018-01-01
  (kormany.hu, 2018; rydoo.com/compliance/hungary/tax-rates).

A rate is chosen by the tax point (DUZP / dátum dodania / teljesítés dátuma), not the
issue date: a December 2024 service invoiced in January 2025 in Slovakia is taxed at 20 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

Country = Literal["CZ", "SK", "HU"]
# "outside": not subject to VAT at all (a late fee is compensation, not a supply): no rate
# on any date, the line carries no VAT whoever the parties are.
Category = Literal["standard", "reduced", "reduced2", "zero", "outside"]
Language = Literal["cs", "sk", "hu", "en"]

COUNTRIES: tuple[Country, ...] = get_args(Country)
CATEGORIES: tuple[Category, ...] = get_args(Category)
LANGUAGES: tuple[Language, ...] = get_args(Language)

# Member states of the EU (ISO 3166 alpha-2; Greece's VAT prefix is EL, its country GR).
EU = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)

CURRENCY: dict[Country, str] = {"CZ": "CZK", "SK": "EUR", "HU": "HUF"}


class VatError(ValueError):
    """A rate or a VAT treatment that the data does not allow."""


@dataclass(frozen=True)
class RatePeriod:
    """The rates of one country from ``valid_from`` up to the next period's start."""

    country: Country
    valid_from: date
    rates: dict[Category, Decimal]
    change: str  # what changed on valid_from, for the error a missing category gets


RATES: tuple[RatePeriod, ...] = (
    RatePeriod(
        "CZ",
        date(2015, 1, 1),
        {"standard": Decimal(21), "reduced": Decimal(15), "reduced2": Decimal(10)},
        "a second reduced rate of 10 % was added",
    ),
    RatePeriod(
        "CZ",
        date(2024, 1, 1),
        {"standard": Decimal(21), "reduced": Decimal(12), "zero": Decimal(0)},
        "the reduced rates of 15 % and 10 % merged into 12 % and books moved to 0 %",
    ),
    RatePeriod(
        "SK",
        date(2011, 1, 1),
        {"standard": Decimal(20), "reduced": Decimal(10)},
        "the standard rate rose to 20 %",
    ),
    RatePeriod(
        "SK",
        date(2023, 1, 1),
        {"standard": Decimal(20), "reduced": Decimal(10), "reduced2": Decimal(5)},
        "a second reduced rate of 5 % was added",
    ),
    RatePeriod(
        "SK",
        date(2025, 1, 1),
        {"standard": Decimal(23), "reduced": Decimal(19), "reduced2": Decimal(5)},
        "the standard rate rose to 23 %, the 10 % rate was replaced by 19 %",
    ),
    RatePeriod(
        "HU",
        date(2012, 1, 1),
        {"standard": Decimal(27), "reduced": Decimal(18), "reduced2": Decimal(5)},
        "the standard rate rose to 27 %",
    ),
)


def rate(country: str, category: str, tax_point: date) -> Decimal:
    """The VAT rate in percent for ``category`` in ``country`` on ``tax_point``."""
    if country not in COUNTRIES:
        raise VatError(f"country {country!r}: expected one of {', '.join(COUNTRIES)}")
    if category not in CATEGORIES:
        raise VatError(f"VAT category {category!r}: expected one of {', '.join(CATEGORIES)}")
    if category == "outside":
        raise VatError("VAT category 'outside' has no rate: the line carries no VAT")
    periods = [p for p in RATES if p.country == country and p.valid_from <= tax_point]
    if not periods:
        first = min(p.valid_from for p in RATES if p.country == country)
        raise VatError(f"no VAT rates for {country} before {first.isoformat()}")
    period = max(periods, key=lambda p: p.valid_from)
    found = period.rates.get(category)
    if found is None:
        raise VatError(
            f"{country} has no {category!r} VAT rate on {tax_point.isoformat()} (since "
            f"{period.valid_from.isoformat()} {period.change}): classify the item again"
        )
    return Decimal(found)


Treatment = Literal["domestic", "reverse_charge", "not_vat_payer"]


def treatment(
    supplier_country: str,
    supplier_vat_payer: bool,
    customer_country: str,
    customer_vat_id: str | None,
) -> Treatment:
    """How VAT applies to a service an ISP supplies.

    - A supplier that is not a VAT payer charges none (and says so on the document).
    - A business customer in another member state with a VAT id: reverse charge (the
      place of supply of a B2B service is the customer's state, VAT Directive art. 44 and
      196), no VAT on the document and the legal note instead.
    - A customer in the supplier's country: domestic VAT at the supplier's rates.
    - A consumer in another member state (OSS for telecommunication services, art. 58) or a
      customer outside the EU is not supported yet: refused rather than taxed wrongly."""
    if not supplier_vat_payer:
        return "not_vat_payer"
    if customer_country == supplier_country:
        return "domestic"
    if customer_country in EU and customer_vat_id:
        return "reverse_charge"
    if customer_country in EU:
        raise VatError(
            f"customer in {customer_country} without a VAT id: a consumer in another member "
            "state is taxed in that state (OSS), which is not supported yet"
        )
    raise VatError(
        f"customer country {customer_country!r}: supplies outside the EU are not supported yet"
    )


# The legal wording each country requires, in each document language. The supplier
# country's own wording is what the law asks for (CZ § 29 (2) c) "daň odvede zákazník",
# SK § 74 (1) "prenesenie daňovej povinnosti", HU 169. § n) "fordított adózás"); the
# document also carries it in the customer's language when that differs.
REVERSE_CHARGE_NOTE: dict[Language, str] = {
    "cs": "Daň odvede zákazník (přenesení daňové povinnosti, čl. 196 směrnice 2006/112/ES)",
    "sk": "Prenesenie daňovej povinnosti (čl. 196 smernice 2006/112/ES)",
    "hu": "Fordított adózás (2006/112/EK irányelv 196. cikk)",
    "en": "Reverse charge (Article 196 of Council Directive 2006/112/EC)",
}
NOT_VAT_PAYER_NOTE: dict[Language, str] = {
    "cs": "Dodavatel není plátcem DPH.",
    "sk": "Dodávateľ nie je platiteľom DPH.",
    "hu": "Alanyi adómentes (az eladó nem áfakörös).",
    "en": "The supplier is not registered for VAT.",
}
COUNTRY_LANGUAGE: dict[Country, Language] = {"CZ": "cs", "SK": "sk", "HU": "hu"}


def legal_notes(supplier_country: Country, treatment_: Treatment, language: Language) -> list[str]:
    """The notes a document in ``language`` carries for its VAT treatment: the supplier
    country's legal wording first, then the customer's language if it differs."""
    table = {"reverse_charge": REVERSE_CHARGE_NOTE, "not_vat_payer": NOT_VAT_PAYER_NOTE}.get(
        treatment_
    )
    if table is None:
        return []
    legal = COUNTRY_LANGUAGE[supplier_country]
    return [table[legal]] + ([table[language]] if language != legal else [])


@dataclass(frozen=True)
class Rounding:
    """Where and to what VAT is rounded in a country.

    ``level`` is "document": the VAT of each rate is the rounded product of that rate's
    summed bases (the recapitulation), and each line's VAT is that amount shared out over
    the lines by largest remainder, so lines add up to the recapitulation exactly.
    ``unit_minor`` is the step in minor units: 1 (haléř, eurocent) or 100 (whole forint)."""

    level: Literal["document"]
    unit_minor: int


ROUNDING: dict[Country, Rounding] = {
    # § 37 ZDPH since 2019-04-01: tax = base x rate, to the haléř (no rounding to crowns).
    "CZ": Rounding("document", 1),
    # § 74 (1) g), i): base per rate and the tax total in euros; eurocents, half up.
    "SK": Rounding("document", 1),
    # Invoices state HUF tax in whole forints (the fillér left circulation in 1999);
    # 5-forint cash rounding applies to cash only, never to a bank transfer.
    "HU": Rounding("document", 100),
}


def round_minor(amount: Decimal, unit_minor: int = 1) -> int:
    """``amount`` (in minor units) rounded half up (away from zero) to a multiple of
    ``unit_minor``."""
    steps = (amount / unit_minor).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(steps) * unit_minor


def vat_of(base_minor: int, rate_percent: Decimal, unit_minor: int = 1) -> int:
    """The VAT on a base at a rate, rounded per the country's unit."""
    return round_minor(Decimal(base_minor) * rate_percent / 100, unit_minor)
