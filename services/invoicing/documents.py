"""Invoices and credit notes as documents: parties, lines, VAT per rate, totals, proration,
credit-note arithmetic and what a credit note leaves due. Pure: no I/O, no clock.

Money is an integer of minor units (haléře, eurocenty, fillér) in the document's currency;
quantities and shares are exact (Decimal, Fraction). A document is built from a spec by
``build_invoice`` or from an issued invoice by ``build_credit_note``; both validate the
whole input first and raise one ``DocumentError`` listing every bad field by its path
(``items[2].quantity: ...``), so nothing is half-built.

Amounts of a credit note are positive, as ISDOC wants them (its rules, pravidla 6.0.2,
"Finanční částky": a credit note is always in positive amounts, its type says subtract);
``Document.sign`` is -1 for a credit note, for display and for what is due.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal, get_args

from services.invoicing import vat
from services.invoicing.domain import NumberStyle, invoice_number

DocumentKind = Literal["invoice", "credit_note"]
Unit = Literal["month", "day", "piece", "hour", "service", "lump"]
UNITS: tuple[Unit, ...] = get_args(Unit)


class DocumentError(ValueError):
    """Bad input for a document: every problem found, each naming its field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Address:
    street: str
    building_number: str
    city: str
    postal_code: str
    country: str  # ISO 3166 alpha-2


@dataclass(frozen=True)
class Supplier:
    """The issuer, from configuration. ``company_id`` is the IČO (CZ, SK) or the
    cégjegyzékszám (HU); ``tax_id`` the DIČ (CZ: "CZ" + digits, SK: ten digits) or the
    adószám (HU, 12345678-2-41); ``vat_id`` the EU VAT number (SK IČ DPH, HU közösségi
    adószám; in CZ the DIČ is the VAT number)."""

    name: str
    address: Address
    company_id: str
    tax_id: str
    vat_id: str | None
    vat_payer: bool
    register_entry: str  # the commercial register entry, printed as given
    bank_account: str  # IBAN, or Czech prefix-number/bank
    bic: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Customer:
    name: str
    address: Address
    company_id: str | None = None
    tax_id: str | None = None
    vat_id: str | None = None


Party = Supplier | Customer


@dataclass(frozen=True)
class Item:
    """What is billed: a service for a period (share < 1 when prorated) or a one-off item.
    The base is quantity x unit price x share, rounded once."""

    description: str
    quantity: Decimal
    unit: str
    unit_price_minor: int
    vat_category: str = "standard"
    period: tuple[date, date] | None = None
    share: Fraction = Fraction(1)
    original_line: int | None = None  # on a credit note: the invoice line it credits


@dataclass(frozen=True)
class Line:
    number: int
    description: str
    quantity: Decimal
    unit: Unit
    unit_price_minor: int
    vat_category: vat.Category
    vat_rate: Decimal | None  # None: no VAT charged (reverse charge, not a VAT payer)
    base_minor: int
    vat_minor: int
    period: tuple[date, date] | None = None
    share: Fraction = Fraction(1)
    original_line: int | None = None

    @property
    def total_minor(self) -> int:
        return self.base_minor + self.vat_minor


@dataclass(frozen=True)
class RateTotal:
    """One row of the VAT recapitulation."""

    vat_rate: Decimal | None
    base_minor: int
    vat_minor: int

    @property
    def total_minor(self) -> int:
        return self.base_minor + self.vat_minor


@dataclass(frozen=True)
class OriginalRef:
    number: str
    issued_on: date
    tax_point_on: date


@dataclass(frozen=True)
class InvoiceSpec:
    number: str
    contract: str
    supplier: Supplier
    customer: Customer
    language: str
    currency: str
    issued_on: date
    tax_point_on: date
    due_on: date
    vs: str
    ss: str | None
    items: Sequence[Item]
    ks: str | None = None
    prices_include_vat: bool = False


@dataclass(frozen=True)
class Document:
    kind: DocumentKind
    number: str
    contract: str
    supplier: Supplier
    customer: Customer
    language: vat.Language
    currency: str
    issued_on: date
    tax_point_on: date
    due_on: date
    vs: str
    ss: str | None
    ks: str | None
    treatment: vat.Treatment
    lines: tuple[Line, ...]
    recap: tuple[RateTotal, ...]
    notes: tuple[str, ...] = ()
    original: OriginalRef | None = None
    reason: str | None = None
    # Unit prices as given included VAT ("from above", CZ § 37 (2)): each rate's VAT is
    # taken out of its summed prices; else VAT is added to the summed bases.
    prices_include_vat: bool = False

    @property
    def sign(self) -> int:
        return -1 if self.kind == "credit_note" else 1

    @property
    def base_minor(self) -> int:
        return sum(r.base_minor for r in self.recap)

    @property
    def vat_minor(self) -> int:
        return sum(r.vat_minor for r in self.recap)

    @property
    def total_minor(self) -> int:
        return self.base_minor + self.vat_minor

    @property
    def rounding(self) -> vat.Rounding:
        return vat.ROUNDING[self.supplier.address.country]  # type: ignore[index]


# --- proration -------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceChange:
    effective_on: date
    unit_price_minor: int


@dataclass(frozen=True)
class Segment:
    """A stretch of a billing period at one price: ``share`` is days active at that price
    over the days of the whole period."""

    start: date
    end: date
    unit_price_minor: int
    share: Fraction


def prorate(
    period_start: date,
    period_end: date,
    unit_price_minor: int,
    active_from: date | None = None,
    active_to: date | None = None,
    changes: Sequence[PriceChange] = (),
) -> list[Segment]:
    """The segments of a billing period a service is billed for, per day: a service that
    starts or ends mid-period, or whose price changes mid-period, is billed for each
    stretch at its price times (days in the stretch / days in the period). Days are
    calendar days, both ends included: a service active 15-31 December of a December
    period is billed 17/31 of the month. ``changes`` take effect on their date (that day
    at the new price); a change before the period sets the price the period starts at."""
    if period_end < period_start:
        raise DocumentError([f"period: ends {period_end} before it starts {period_start}"])
    start = max(period_start, active_from or period_start)
    end = min(period_end, active_to or period_end)
    if end < start:
        return []
    days = (period_end - period_start).days + 1
    price = unit_price_minor
    cuts: list[tuple[date, int]] = []
    for change in sorted(changes, key=lambda c: c.effective_on):
        if change.effective_on <= start:
            price = change.unit_price_minor
        elif change.effective_on <= end:
            cuts.append((change.effective_on, change.unit_price_minor))
    segments: list[Segment] = []
    at = start
    for cut_on, new_price in cuts:
        segments.append(_segment(at, cut_on - timedelta(days=1), price, days))
        at, price = cut_on, new_price
    segments.append(_segment(at, end, price, days))
    return segments


def _segment(start: date, end: date, price: int, period_days: int) -> Segment:
    return Segment(start, end, price, Fraction((end - start).days + 1, period_days))


def service_items(
    description: str,
    segments: Sequence[Segment],
    vat_category: str = "standard",
    quantity: Decimal = Decimal(1),
    unit: str = "month",
) -> list[Item]:
    """The invoice items of a recurring service over its segments (one per price)."""
    return [
        Item(
            description,
            quantity,
            unit,
            s.unit_price_minor,
            vat_category,
            period=(s.start, s.end),
            share=s.share,
        )
        for s in segments
    ]


# --- building an invoice ---------------------------------------------------------------


def build_invoice(spec: InvoiceSpec) -> Document:
    problems = _check_parties(spec.supplier, spec.customer)
    problems += _check_header(spec)
    country = spec.supplier.address.country
    treatment: vat.Treatment | None = None
    if not problems:
        try:
            treatment = vat.treatment(
                country,
                spec.supplier.vat_payer,
                spec.customer.address.country,
                spec.customer.vat_id,
            )
        except vat.VatError as e:
            problems.append(f"customer: {e}")
    rates, item_problems = _item_rates(country, treatment, spec.tax_point_on, spec.items)
    problems += item_problems
    if problems or treatment is None:
        raise DocumentError(problems)
    lines, recap = _priced_lines(country, spec.items, rates, spec.prices_include_vat)
    return Document(
        kind="invoice",
        number=spec.number,
        contract=spec.contract,
        supplier=spec.supplier,
        customer=spec.customer,
        language=spec.language,  # type: ignore[arg-type]
        currency=spec.currency,
        issued_on=spec.issued_on,
        tax_point_on=spec.tax_point_on,
        due_on=spec.due_on,
        vs=spec.vs,
        ss=spec.ss,
        ks=spec.ks,
        treatment=treatment,
        lines=lines,
        recap=recap,
        notes=tuple(vat.legal_notes(country, treatment, spec.language)),  # type: ignore[arg-type]
        prices_include_vat=spec.prices_include_vat,
    )


def invoice_lines(
    supplier_country: str,
    treatment: vat.Treatment,
    tax_point_on: date,
    items: Sequence[Item],
    prices_include_vat: bool = False,
) -> tuple[tuple[Line, ...], tuple[RateTotal, ...]]:
    """An invoice's lines and VAT recapitulation without its parties: what a billing run
    computes once for every contract billed the same items under the same treatment
    (``build_invoice`` makes the same from a whole spec). Raises ``DocumentError``
    naming each bad item."""
    if supplier_country not in vat.COUNTRIES:
        raise DocumentError([f"supplier country {supplier_country!r}: not supported"])
    rates, problems = _item_rates(supplier_country, treatment, tax_point_on, items)
    if problems:
        raise DocumentError(problems)
    return _priced_lines(supplier_country, items, rates, prices_include_vat)


def _item_rates(
    country: str, treatment: vat.Treatment | None, tax_point_on: date, items: Sequence[Item]
) -> tuple[list[Decimal | None], list[str]]:
    """Each item's VAT rate (None: no VAT charged) and the problems of the items."""
    problems: list[str] = []
    if not items:
        problems.append("items: an invoice needs at least one item")
    rates: list[Decimal | None] = []
    for i, item in enumerate(items):
        where = f"items[{i}]"
        problems += _check_item(item, where)
        rate: Decimal | None = None
        if item.vat_category != "outside":
            try:
                rate = vat.rate(country, item.vat_category, tax_point_on)
            except vat.VatError as e:
                problems.append(f"{where}.vat_category: {e}")
        rates.append(rate if treatment == "domestic" else None)
    return rates, problems


def _priced_lines(
    country: str, items: Sequence[Item], rates: Sequence[Decimal | None], gross: bool
) -> tuple[tuple[Line, ...], tuple[RateTotal, ...]]:
    rounding = vat.ROUNDING[country]  # type: ignore[index]
    amounts = [
        vat.round_minor(
            Decimal(item.unit_price_minor) * item.quantity * _decimal(item.share),
            rounding.unit_minor,
        )
        for item in items
    ]
    return _vat_lines(items, rates, amounts, rounding, gross=gross)


def _decimal(share: Fraction) -> Decimal:
    return Decimal(share.numerator) / Decimal(share.denominator)


def _vat_lines(
    items: Sequence[Item],
    rates: Sequence[Decimal | None],
    amounts: Sequence[int],
    rounding: vat.Rounding,
    rate_vat: Mapping[Decimal | None, int] | None = None,
    gross: bool = False,
) -> tuple[tuple[Line, ...], tuple[RateTotal, ...]]:
    """Lines and recapitulation. ``amounts`` are the lines' bases, or with ``gross`` their
    prices including VAT. VAT is computed per rate (document level): on the summed bases,
    or taken out of the summed gross prices (rate / (100 + rate) of them, CZ § 37 (2)),
    unless ``rate_vat`` gives it; then shared out over that rate's lines in proportion."""
    order: list[Decimal | None] = []
    for r in rates:
        if r not in order:
            order.append(r)
    order.sort(key=lambda r: -1 if r is None else -r)  # highest rate first, as printed
    line_vat = [0] * len(items)
    recap: list[RateTotal] = []
    for r in order:
        idx = [i for i, x in enumerate(rates) if x == r]
        amount = sum(amounts[i] for i in idx)
        if rate_vat is not None:
            total_vat = rate_vat[r]
        elif r is None:
            total_vat = 0
        elif gross:
            total_vat = vat.round_minor(Decimal(amount) * r / (100 + r), rounding.unit_minor)
        else:
            total_vat = vat.vat_of(amount, r, rounding.unit_minor)
        shares = share_out(total_vat, [amounts[i] for i in idx], rounding.unit_minor)
        for i, v in zip(idx, shares, strict=True):
            line_vat[i] = v
        recap.append(RateTotal(r, amount - total_vat if gross else amount, total_vat))
    bases = [a - v for a, v in zip(amounts, line_vat, strict=True)] if gross else amounts
    lines = tuple(
        Line(
            number=n + 1,
            description=item.description.strip(),
            quantity=item.quantity,
            unit=item.unit,  # type: ignore[arg-type]
            unit_price_minor=_net_unit_price(item.unit_price_minor, rates[n], gross),
            vat_category=item.vat_category,  # type: ignore[arg-type]
            vat_rate=rates[n],
            base_minor=bases[n],
            vat_minor=line_vat[n],
            period=item.period,
            share=item.share,
            original_line=item.original_line,
        )
        for n, item in enumerate(items)
    )
    return lines, tuple(recap)


def _net_unit_price(price_minor: int, rate: Decimal | None, gross: bool) -> int:
    """The unit price without VAT a line prints (the law asks for it): a price given with
    VAT has the rate taken out, to the minor unit (the base is computed from the prices
    as given, not from this)."""
    if not gross or rate is None:
        return price_minor
    return vat.round_minor(Decimal(price_minor) * 100 / (100 + rate))


def share_out(total: int, weights: Sequence[int], unit: int = 1) -> list[int]:
    """``total`` (a multiple of ``unit``) split over ``weights`` in proportion, in multiples
    of ``unit``, by largest remainder (ties to the earlier weight): the parts add up to
    ``total`` exactly."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    steps = total // unit
    exact = [Fraction(steps * w, whole) for w in weights]
    parts = [int(x) for x in exact]  # int() truncates toward zero; weights are >= 0
    left = steps - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return [p * unit for p in parts]


# --- validation --------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}")
_CZ_ACCOUNT = re.compile(r"(?:[0-9]{1,6}-)?[0-9]{2,10}/[0-9]{4}")
_TAX_ID = {
    "CZ": (re.compile(r"CZ[0-9]{8,10}"), "CZ and 8 to 10 digits"),
    "SK": (re.compile(r"[0-9]{10}"), "10 digits (DIČ)"),
    "HU": (re.compile(r"[0-9]{8}-[1-5]-[0-9]{2}"), "an adószám like 12345678-2-41"),
}
_VAT_ID = {
    "CZ": (re.compile(r"CZ[0-9]{8,10}"), "CZ and 8 to 10 digits"),
    "SK": (re.compile(r"SK[0-9]{10}"), "SK and 10 digits (IČ DPH)"),
    "HU": (re.compile(r"HU[0-9]{8}"), "HU and 8 digits (közösségi adószám)"),
}
_EU_VAT_ID = re.compile(r"(?:[A-Z]{2}|EL)[0-9A-Z+*.]{2,13}")


def czech_company_id_valid(ico: str) -> bool:
    """IČO: eight digits, the last a mod-11 check digit of the first seven."""
    if not re.fullmatch(r"[0-9]{8}", ico):
        return False
    total = sum(int(d) * w for d, w in zip(ico[:7], range(8, 1, -1), strict=True))
    return int(ico[7]) == (11 - total % 11) % 10


def iban_valid(iban: str) -> bool:
    if not _IBAN.fullmatch(iban):
        return False
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def supplier_problems(s: Supplier) -> list[str]:
    """What is wrong with a supplier's configuration, each naming the field."""
    problems = _address_problems(s.address, "supplier.address")
    country = s.address.country
    if not s.name.strip():
        problems.append("supplier.name: must not be empty")
    if country not in vat.COUNTRIES:
        expected = ", ".join(vat.COUNTRIES)
        return [*problems, f"supplier.address.country: {country!r}, expected one of {expected}"]
    if country == "CZ" and not czech_company_id_valid(s.company_id):
        problems.append(f"supplier.company_id: {s.company_id!r} is not a valid IČO")
    elif country == "SK" and not re.fullmatch(r"[0-9]{8}", s.company_id):
        problems.append(f"supplier.company_id: {s.company_id!r}, expected an IČO of 8 digits")
    elif country == "HU" and not re.fullmatch(r"[0-9]{2}-[0-9]{2}-[0-9]{6}", s.company_id):
        problems.append(
            f"supplier.company_id: {s.company_id!r}, expected a cégjegyzékszám like 01-09-123456"
        )
    pattern, expected = _TAX_ID[country]
    if not pattern.fullmatch(s.tax_id):
        problems.append(f"supplier.tax_id: {s.tax_id!r}, expected {expected}")
    if s.vat_payer or s.vat_id:
        pattern, expected = _VAT_ID[country]
        if not s.vat_id or not pattern.fullmatch(s.vat_id):
            problems.append(f"supplier.vat_id: {s.vat_id!r}, expected {expected}")
    if not s.register_entry.strip():
        problems.append("supplier.register_entry: must name the register and the entry")
    account = s.bank_account.replace(" ", "").upper()
    if _IBAN.fullmatch(account):
        if not iban_valid(account):
            problems.append(f"supplier.bank_account: {s.bank_account!r} fails the IBAN check")
    elif not (country == "CZ" and _CZ_ACCOUNT.fullmatch(s.bank_account.strip())):
        problems.append(
            f"supplier.bank_account: {s.bank_account!r}, expected an IBAN"
            + (" or prefix-number/bank" if country == "CZ" else "")
        )
    if s.bic is not None and not re.fullmatch(r"[A-Z0-9]{8}([A-Z0-9]{3})?", s.bic):
        problems.append(f"supplier.bic: {s.bic!r}, expected 8 or 11 letters and digits")
    return problems


def _address_problems(a: Address, where: str) -> list[str]:
    problems = [
        f"{where}.{name}: must not be empty"
        for name in ("street", "city", "postal_code")
        if not str(getattr(a, name)).strip()
    ]
    if not re.fullmatch(r"[A-Z]{2}", a.country):
        problems.append(f"{where}.country: {a.country!r}, expected an ISO 3166 code like CZ")
    return problems


def _check_parties(supplier: Supplier, customer: Customer) -> list[str]:
    return supplier_problems(supplier) + customer_problems(customer)


def customer_problems(customer: Customer) -> list[str]:
    """What a document cannot say of its customer, each naming the field."""
    problems: list[str] = []
    if not customer.name.strip():
        problems.append("customer.name: must not be empty")
    problems += _address_problems(customer.address, "customer.address")
    if customer.vat_id is not None and not _EU_VAT_ID.fullmatch(customer.vat_id):
        problems.append(
            f"customer.vat_id: {customer.vat_id!r}, expected a VAT number like SK2020202020"
        )
    return problems


def _check_header(spec: InvoiceSpec) -> list[str]:
    problems: list[str] = []
    if not spec.number.strip():
        problems.append("number: must not be empty")
    if not spec.contract.strip():
        problems.append("contract: must not be empty")
    if spec.language not in vat.LANGUAGES:
        problems.append(f"language: {spec.language!r}, expected one of {', '.join(vat.LANGUAGES)}")
    country = spec.supplier.address.country
    expected = vat.CURRENCY.get(country)  # type: ignore[call-overload]
    if expected is not None and spec.currency != expected:
        problems.append(
            f"currency: {spec.currency!r}, a supplier in {country} invoices in {expected} "
            "(a foreign-currency document needs an exchange rate for its VAT: not supported yet)"
        )
    if spec.due_on < spec.issued_on:
        problems.append(f"due_on: {spec.due_on} is before the issue date {spec.issued_on}")
    problems += _symbol_problems("vs", spec.vs, required=True)
    problems += _symbol_problems("ss", spec.ss)
    if spec.ks is not None and not re.fullmatch(r"[0-9]{4}", spec.ks):
        problems.append(f"ks: {spec.ks!r}, expected 4 digits")
    return problems


def _symbol_problems(name: str, value: str | None, required: bool = False) -> list[str]:
    if value is None:
        return [f"{name}: required"] if required else []
    if not re.fullmatch(r"[0-9]{1,10}", value):
        return [f"{name}: {value!r}, expected 1 to 10 digits"]
    return []


def _check_item(item: Item, where: str) -> list[str]:
    problems: list[str] = []
    if not item.description.strip():
        problems.append(f"{where}.description: must not be empty")
    elif len(item.description) > 300:
        problems.append(f"{where}.description: {len(item.description)} characters, at most 300")
    if not isinstance(item.quantity, Decimal) or not item.quantity.is_finite():
        problems.append(f"{where}.quantity: {item.quantity!r}, expected a decimal number")
    elif item.quantity <= 0:
        problems.append(f"{where}.quantity: {item.quantity}, expected more than 0")
    if item.unit not in UNITS:
        problems.append(f"{where}.unit: {item.unit!r}, expected one of {', '.join(UNITS)}")
    if isinstance(item.unit_price_minor, bool) or not isinstance(item.unit_price_minor, int):
        problems.append(f"{where}.unit_price_minor: {item.unit_price_minor!r}, expected an integer")
    elif item.unit_price_minor < 0:
        problems.append(f"{where}.unit_price_minor: {item.unit_price_minor}, expected 0 or more")
    if not 0 < item.share <= 1:
        problems.append(f"{where}.share: {item.share}, expected more than 0 and at most 1")
    if item.period is not None and item.period[1] < item.period[0]:
        problems.append(f"{where}.period: ends {item.period[1]} before it starts {item.period[0]}")
    return problems


# --- credit notes ------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditPart:
    """Part of one line of the original invoice to credit: ``base_minor`` of its base."""

    line: int
    base_minor: int


def credit_note_number(year: int, sequence: int, style: NumberStyle = "yyyy6") -> str:
    """Credit notes have their own series: "D" and the digits an invoice number would have
    (D2026000001), so the two series never collide and a person tells them apart."""
    return "D" + invoice_number(year, sequence, style)


def next_sequence(last_year: int | None, last_sequence: int, year: int) -> int:
    """The next number of a gapless yearly series: one after the last issued this year,
    1 in a new year. The caller reads the last and stores the next in one transaction."""
    if last_year is not None and year < last_year:
        raise DocumentError([f"year: {year} is before the series' last year {last_year}"])
    return last_sequence + 1 if last_year == year else 1


def build_credit_note(
    original: Document,
    number: str,
    issued_on: date,
    reason: str,
    parts: Sequence[CreditPart] | None = None,
    already_credited: Mapping[int, int] | None = None,
) -> Document:
    """A credit note for ``parts`` of ``original`` (all that is left of it when None).

    ``already_credited`` is the base already credited per original line by earlier credit
    notes. The VAT credited for a rate is the difference between the original VAT in
    proportion to the base credited after and before this note, so credit notes that
    together credit everything give back exactly the original VAT, whatever the rounding."""
    already = dict(already_credited or {})
    problems: list[str] = []
    if original.kind != "invoice":
        problems.append(f"original: {original.number} is a credit note, not an invoice")
    if not number.strip():
        problems.append("number: must not be empty")
    if not reason.strip():
        problems.append("reason: a credit note must say why (the law asks for the reason)")
    elif len(reason) > 300:
        problems.append(f"reason: {len(reason)} characters, at most 300")
    if issued_on < original.issued_on:
        problems.append(
            f"issued_on: {issued_on} is before the invoice's issue date {original.issued_on}"
        )
    by_number = {line.number: line for line in original.lines}
    left = {n: line.base_minor - already.get(n, 0) for n, line in by_number.items()}
    if parts is None:
        parts = [CreditPart(n, rest) for n, rest in left.items() if rest > 0]
        if not parts:
            problems.append(f"original: {original.number} is fully credited already")
    seen: set[int] = set()
    for i, part in enumerate(parts):
        where = f"parts[{i}]"
        if part.line not in by_number:
            problems.append(
                f"{where}.line: {part.line}, the invoice has lines 1 to {len(by_number)}"
            )
            continue
        if part.line in seen:
            problems.append(f"{where}.line: line {part.line} is credited twice in one note")
        seen.add(part.line)
        if not 0 < part.base_minor <= left[part.line]:
            problems.append(
                f"{where}.base_minor: {part.base_minor}, expected more than 0 and at most "
                f"{left[part.line]} (the base of line {part.line} not yet credited)"
            )
    if problems:
        raise DocumentError(problems)

    rounding = original.rounding
    rate_base = {r.vat_rate: r.base_minor for r in original.recap}
    rate_vat = {r.vat_rate: r.vat_minor for r in original.recap}
    before: dict[Decimal | None, int] = {}
    now: dict[Decimal | None, int] = {}
    for n, line in by_number.items():
        before[line.vat_rate] = before.get(line.vat_rate, 0) + already.get(n, 0)
    for part in parts:
        r = by_number[part.line].vat_rate
        now[r] = now.get(r, 0) + part.base_minor
    credited_vat: dict[Decimal | None, int] = {}
    for r, base in now.items():
        whole, vat_total = rate_base[r], rate_vat[r]
        after = before.get(r, 0) + base
        credited_vat[r] = vat.round_minor(
            Decimal(vat_total) * after / whole, rounding.unit_minor
        ) - vat.round_minor(Decimal(vat_total) * before.get(r, 0) / whole, rounding.unit_minor)

    items: list[Item] = []
    for part in parts:
        line = by_number[part.line]
        if part.base_minor == line.base_minor:  # the whole line: as it was invoiced
            items.append(
                Item(
                    line.description,
                    line.quantity,
                    line.unit,
                    line.unit_price_minor,
                    line.vat_category,
                    line.period,
                    line.share,
                    original_line=line.number,
                )
            )
        else:
            items.append(
                Item(
                    line.description,
                    Decimal(1),
                    "lump",
                    part.base_minor,
                    line.vat_category,
                    line.period,
                    original_line=line.number,
                )
            )
    rates = [by_number[p.line].vat_rate for p in parts]
    bases = [p.base_minor for p in parts]
    lines, recap = _vat_lines(items, rates, bases, rounding, rate_vat=credited_vat)
    return replace(
        original,
        kind="credit_note",
        number=number,
        issued_on=issued_on,
        tax_point_on=issued_on,
        due_on=issued_on,
        lines=lines,
        recap=recap,
        original=OriginalRef(original.number, original.issued_on, original.tax_point_on),
        reason=reason.strip(),
    )


def credited_per_line(original: Document, notes: Sequence[Document]) -> dict[int, int]:
    """The base credited per line of ``original`` by ``notes``: what ``build_credit_note``
    takes as ``already_credited``."""
    credited: dict[int, int] = {}
    for note in notes:
        if note.original is None or note.original.number != original.number:
            raise DocumentError([f"credit note {note.number} does not credit {original.number}"])
        for line in note.lines:
            if line.original_line is not None:
                n = line.original_line
                credited[n] = credited.get(n, 0) + line.base_minor
    return credited


@dataclass(frozen=True)
class Balance:
    """What an invoice asks for after its credit notes and payments.

    ``due_minor``: its total less what was credited; ``outstanding_minor``: what is still
    to pay (0 for a fully credited invoice, which is then no longer overdue);
    ``credit_minor``: what was paid above what is now due, which becomes the customer's
    credit."""

    due_minor: int
    outstanding_minor: int
    credit_minor: int

    @property
    def settled(self) -> bool:
        return self.outstanding_minor == 0


def balance(invoice: Document, credit_notes: Sequence[Document], paid_minor: int) -> Balance:
    if invoice.kind != "invoice":
        raise DocumentError([f"invoice: {invoice.number} is a credit note"])
    for note in credit_notes:
        if note.original is None or note.original.number != invoice.number:
            raise DocumentError([f"credit note {note.number} does not credit {invoice.number}"])
    credited = sum(note.total_minor for note in credit_notes)
    if credited > invoice.total_minor:
        raise DocumentError(
            [f"credit notes credit {credited}, more than the invoice's {invoice.total_minor}"]
        )
    if paid_minor < 0:
        raise DocumentError([f"paid_minor: {paid_minor}, expected 0 or more"])
    due = invoice.total_minor - credited
    return Balance(due, max(due - paid_minor, 0), max(paid_minor - due, 0))
