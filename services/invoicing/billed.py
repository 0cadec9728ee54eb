"""What a contract bills: its recurring services and its one-off items, and the invoice
items a billing period takes from them. Pure: no I/O, no clock; the caller passes the
period.

A **service** (internet tariff, VoIP, device insurance billed until a date, a static IP,
anything recurring) has a price for its period (a month, a quarter or a year), a quantity,
a VAT category, optional first and last days billed (``starts_on``, ``ends_on``) and price
changes from given days. A month's billing run bills a monthly service for that month; a
quarterly one in the first month of each calendar quarter for the quarter, a yearly one in
January for the year. A service that starts, ends or changes price inside the period it is
billed for is prorated per day (``documents.prorate``: days at each price over the days of
the period).

A **one-off item** (goods sold, an installation, a technician's paid call-out) goes on the
contract's next invoice (``invoice: "next"``) or at once on an invoice of its own
(``"own"``).

A contract whose file gives no services bills its monthly price as one tariff service, as
contracts always have (``legacy_tariff``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.invoicing import documents, vat
from services.invoicing.vat import Category, Language

ServiceKind = Literal["tariff", "voip", "insurance", "static_ip", "other"]
Every = Literal["month", "quarter", "year"]
OneOffUnit = Literal["piece", "hour", "service", "lump"]
# The first month of a billing period of each length: a quarter starts in January, April,
# July and October, a year in January.
_PERIOD_MONTHS: dict[Every, int] = {"month": 1, "quarter": 3, "year": 12}

# How a contract's monthly price is described when it is its only service.
TARIFF: dict[Language, str] = {
    "cs": "Připojení k internetu",
    "sk": "Pripojenie na internet",
    "hu": "Internet-hozzáférés",
    "en": "Internet access",
}
# The line of a VoIP credit top-up's invoice (a single-purpose voucher: docs/invoices.md).
TOPUP: dict[Language, str] = {
    "cs": "Dobití kreditu VoIP",
    "sk": "Dobitie kreditu VoIP",
    "hu": "VoIP egyenleg feltöltése",
    "en": "VoIP credit top-up",
}
LATE_FEE: dict[Language, str] = {
    "cs": "Poplatek z prodlení",
    "sk": "Poplatok z omeškania",
    "hu": "Késedelmi díj",
    "en": "Late payment fee",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceChange(_Strict):
    effective_on: date
    unit_price_minor: int = Field(ge=0)


class Service(_Strict):
    kind: ServiceKind = "other"
    description: str = Field(min_length=1, max_length=300)
    unit_price_minor: int = Field(ge=0, description="for one unit and one whole period")
    quantity: Decimal = Field(default=Decimal(1), gt=0, allow_inf_nan=False)
    every: Every = "month"
    vat_category: Category = "standard"
    starts_on: date | None = None
    ends_on: date | None = Field(default=None, description="the last day billed")
    price_changes: tuple[PriceChange, ...] = ()
    # voip: its calls are paid from prepaid credit (top-ups) and never invoiced as lines
    prepaid: bool = False

    @model_validator(mode="after")
    def _dates(self) -> Service:
        if self.prepaid and self.kind != "voip":
            raise ValueError(f"prepaid is for a voip service, not {self.kind}")
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError(f"ends_on {self.ends_on} is before starts_on {self.starts_on}")
        days = [c.effective_on for c in self.price_changes]
        if len(set(days)) != len(days):
            raise ValueError("two price changes on one day")
        return self


class OneOff(_Strict):
    description: str = Field(min_length=1, max_length=300)
    quantity: Decimal = Field(default=Decimal(1), gt=0, allow_inf_nan=False)
    unit: OneOffUnit = "piece"
    unit_price_minor: int = Field(ge=0)
    vat_category: Category = "standard"
    invoice: Literal["next", "own"] = Field(
        default="next", description="on the next invoice, or at once on one of its own"
    )

    def item(self) -> documents.Item:
        return documents.Item(
            self.description, self.quantity, self.unit, self.unit_price_minor, self.vat_category
        )


class Terms(_Strict):
    """A contract's billing terms as invoicing stores them (``contracts.terms``)."""

    prices_include_vat: bool = Field(
        default=True, description="prices are what a consumer pays (VAT included)"
    )
    services: tuple[Service, ...] = ()


def legacy_tariff(monthly_fee_minor: int, language: str) -> Terms:
    """A contract with only a monthly price: one tariff service, VAT included (what the
    invoice asked for before services existed)."""
    if monthly_fee_minor <= 0:
        return Terms()
    description = TARIFF.get(language, TARIFF["en"])  # type: ignore[call-overload]
    return Terms(
        services=(
            Service(kind="tariff", description=description, unit_price_minor=monthly_fee_minor),
        )
    )


def month_bounds(year: int, month: int) -> tuple[date, date]:
    start = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return start, following - timedelta(days=1)


def service_period(every: Every, year: int, month: int) -> tuple[date, date] | None:
    """The period a service billed ``every`` month, quarter or year is invoiced for in the
    billing run of ``year``-``month`` (None: not billed in that month)."""
    length = _PERIOD_MONTHS[every]
    if (month - 1) % length:
        return None
    start, _ = month_bounds(year, month)
    last_month = month + length - 1
    _, end = month_bounds(year, last_month)
    return start, end


def period_items(terms: Terms, year: int, month: int) -> list[documents.Item]:
    """The invoice items of the billing run of ``year``-``month``: each service billed
    in that month, prorated per day over what of its period it is active and at which
    price. A service that ended before, or starts after, its period bills nothing."""
    items: list[documents.Item] = []
    for s in terms.services:
        bounds = service_period(s.every, year, month)
        if bounds is None:
            continue
        segments = documents.prorate(
            bounds[0],
            bounds[1],
            s.unit_price_minor,
            active_from=s.starts_on,
            active_to=s.ends_on,
            changes=[
                documents.PriceChange(c.effective_on, c.unit_price_minor) for c in s.price_changes
            ],
        )
        unit = "month" if s.every == "month" else "service"
        items += documents.service_items(s.description, segments, s.vat_category, s.quantity, unit)
    return [i for i in items if i.unit_price_minor > 0]


def late_fee_item(amount_minor: int, language: str) -> documents.Item:
    """Late fees charged since the last invoice: compensation, not a supply, so outside
    VAT (no rate, no VAT on any document)."""
    description = LATE_FEE.get(language, LATE_FEE["en"])  # type: ignore[call-overload]
    return documents.Item(description, Decimal(1), "lump", amount_minor, "outside")


def topup_item(amount_minor: int, language: str) -> documents.Item:
    """VoIP credit bought ahead: one voucher at the amount asked, VAT included, at the
    standard rate of a telephone service (docs/invoices.md, "VoIP credit top-ups")."""
    description = TOPUP.get(language, TOPUP["en"])  # type: ignore[call-overload]
    return documents.Item(description, Decimal(1), "piece", amount_minor, "standard")


# --- postpaid VoIP calls (issue 31 item 3) -------------------------------------------------

# A line of a month's calls to one destination: "Hovory 11/2026: Mobilní sítě CZ, 12 hovorů,
# 34 min". The count's word by the language's plural (cs, sk: 1 / 2-4 / 5 and more).
CALLS: dict[Language, str] = {
    "cs": "Hovory {month}: {destination}, {count}, {minutes} min",
    "sk": "Hovory {month}: {destination}, {count}, {minutes} min",
    "hu": "Hívások {month}: {destination}, {count}, {minutes} perc",
    "en": "Calls {month}: {destination}, {count}, {minutes} min",
}
_CALL_WORDS: dict[Language, tuple[str, str, str]] = {
    "cs": ("hovor", "hovory", "hovorů"),
    "sk": ("hovor", "hovory", "hovorov"),
    "hu": ("hívás", "hívás", "hívás"),
    "en": ("call", "calls", "calls"),
}


@dataclass(frozen=True)
class CallGroup:
    """A contract's unbilled postpaid calls of one month (``YYYY-MM``, the operator's
    calendar) to one destination: how many, their billed seconds, their price without VAT."""

    month: str
    destination: str
    calls: int
    seconds: int
    price_minor: int


def calls_word(count: int, language: str) -> str:
    one, few, many = _CALL_WORDS.get(language, _CALL_WORDS["en"])  # type: ignore[call-overload]
    return f"{count} {one if count == 1 else few if 2 <= count <= 4 else many}"


def call_items(
    groups: Sequence[CallGroup], language: str, vat_rate: Decimal | None
) -> list[documents.Item]:
    """One line per group, in month then destination order, at the standard VAT rate:
    the calls' prices are rated without VAT, so on an invoice whose prices include VAT
    (``vat_rate`` given: the standard rate) each line's price is the sum plus that VAT,
    rounded once per line; else the sum as it is."""
    text = CALLS.get(language, CALLS["en"])  # type: ignore[call-overload]
    items = []
    for g in sorted(groups, key=lambda g: (g.month, g.destination)):
        year, month = g.month.split("-")
        price = g.price_minor
        if vat_rate is not None:
            price = vat.round_minor(Decimal(price) * (100 + vat_rate) / 100)
        description = text.format(
            month=f"{int(month)}/{year}",
            destination=g.destination,
            count=calls_word(g.calls, language),
            minutes=-(-g.seconds // 60),
        )
        items.append(documents.Item(description[:300], Decimal(1), "service", price, "standard"))
    return items
