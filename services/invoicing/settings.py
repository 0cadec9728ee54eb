"""Invoicing's own settings, besides the runtime's (``BILLING_*``, docs/configuration.md):
numbering, the billing run's chunks, and the supplier: the company whose name, address,
registration and tax numbers and bank account every invoice and credit note states.

The worker and every invoicing command check the supplier before anything else
(``supplier``): a missing or wrong one is refused in one line naming the variable
(exit 78), so no document is issued with an identity the law would not accept."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from schemas.coupons import Coupon, checked_coupons, default_coupons
from schemas.coupons import parse_coupon as _coupon
from services.invoicing import documents, vat
from services.runtime.auth import ConfigError
from services.runtime.settings import Settings, env_name

# The supplier's fields as documents.Supplier names them, and the setting each comes from.
SUPPLIER_FIELDS = {
    "supplier.name": "supplier_name",
    "supplier.address.street": "supplier_street",
    "supplier.address.building_number": "supplier_building_number",
    "supplier.address.city": "supplier_city",
    "supplier.address.postal_code": "supplier_postal_code",
    "supplier.address.country": "supplier_country",
    "supplier.company_id": "supplier_company_id",
    "supplier.tax_id": "supplier_tax_id",
    "supplier.vat_id": "supplier_vat_id",
    "supplier.register_entry": "supplier_register_entry",
    "supplier.bank_account": "supplier_bank_account",
    "supplier.bic": "supplier_bic",
}
REQUIRED = (
    "supplier_name",
    "supplier_street",
    "supplier_city",
    "supplier_postal_code",
    "supplier_country",
    "supplier_company_id",
    "supplier_tax_id",
    "supplier_register_entry",
)


class InvoicingSettings(Settings):
    # invoice numbers: YYYY + 6 digits, or YY + 8 digits past 999,999 invoices a year
    invoice_number_style: Literal["yyyy6", "yy8"] = "yyyy6"
    billing_chunk: int = 20_000  # contracts per transaction of a billing run

    # The supplier (docs/invoices.md, "Supplier"). company_id: IČO (CZ, SK) or
    # cégjegyzékszám (HU); tax_id: DIČ (CZ: CZ + digits; SK: 10 digits) or adószám (HU);
    # vat_id: IČ DPH (SK) or közösségi adószám (HU), a VAT payer's; in CZ the DIČ.
    supplier_name: str | None = None
    supplier_street: str | None = None
    supplier_building_number: str = ""
    supplier_city: str | None = None
    supplier_postal_code: str | None = None
    supplier_country: str | None = None  # CZ, SK or HU
    supplier_company_id: str | None = None
    supplier_tax_id: str | None = None
    supplier_vat_id: str | None = None
    supplier_vat_payer: bool = True
    supplier_register_entry: str | None = None  # the commercial register and its entry
    # The account documents ask to be paid to: an IBAN or Czech prefix-number/bank. By
    # default BILLING_BANK_ACCOUNTS' account of the supplier country's currency; when set,
    # it must be that account (invoice.issued names it too).
    supplier_bank_account: str | None = None
    supplier_bic: str | None = None
    supplier_email: str | None = None
    supplier_phone: str | None = None

    # VoIP credit top-ups (docs/invoices.md, "VoIP credit top-ups"): the coupons offered,
    # code -> "AMOUNT CURRENCY" (the invoice's total, VAT included), and each currency's
    # default monthly cap of a contract's self-service top-ups, in minor units (about
    # 1,000 CZK each); `billing topup cap` sets a contract's own. Checked at start.
    topup_coupons: dict[str, str] = Field(default_factory=default_coupons)
    topup_cap_minor: dict[str, int] = Field(
        default_factory=lambda: {"CZK": 100_000, "EUR": 4_000, "HUF": 1_500_000}
    )
    topup_due_days: int = Field(default=14, ge=0, le=365)  # a top-up invoice's due date

    @field_validator("topup_coupons")
    @classmethod
    def _coupons(cls, value: dict[str, str]) -> dict[str, str]:
        for code, text in value.items():
            _coupon(code, text)  # raises, naming the coupon
        return value

    @field_validator("topup_cap_minor")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        for currency, cap in value.items():
            if not (len(currency) == 3 and currency.isascii() and currency.isupper()):
                raise ValueError(f"{currency!r}: expected a currency code such as CZK")
            if cap < 0:
                raise ValueError(f"{currency}: {cap}, expected 0 or more minor units")
        return value

    @model_validator(mode="after")
    def _coupons_payable(self) -> InvoicingSettings:
        given = "topup_coupons" in self.model_fields_set
        names = (env_name("topup_coupons"), env_name("bank_accounts"))
        offered = checked_coupons(self.topup_coupons, given, self.bank_accounts, names)
        object.__setattr__(self, "topup_coupons", offered)
        return self

    def coupons(self) -> dict[str, Coupon]:
        """The coupons offered, by code."""
        return {code: _coupon(code, text) for code, text in self.topup_coupons.items()}


def supplier(settings: InvoicingSettings) -> documents.Supplier:
    """The configured supplier, checked by ``documents.supplier_problems``; a missing or
    refused setting raises ``ConfigError`` (exit 78) naming each variable."""
    missing = [env_name(n) for n in REQUIRED if not (getattr(settings, n) or "").strip()]
    if missing:
        raise ConfigError(
            f"no supplier configured: set {', '.join(missing)} (docs/configuration.md, Supplier)"
        )
    s = settings
    country = (s.supplier_country or "").strip().upper()
    currency = vat.CURRENCY.get(country)  # type: ignore[call-overload]
    paid_to = s.bank_accounts.get(currency or "", "")
    account = (s.supplier_bank_account or paid_to).strip()
    if s.supplier_bank_account and paid_to and account.replace(" ", "") != paid_to.replace(" ", ""):
        raise ConfigError(
            f"{env_name('supplier_bank_account')}={account!r} is not "
            f"{env_name('bank_accounts')}' {currency} account {paid_to!r}: invoices name one"
            " account, set them alike"
        )
    found = documents.Supplier(
        name=(s.supplier_name or "").strip(),
        address=documents.Address(
            street=(s.supplier_street or "").strip(),
            building_number=s.supplier_building_number.strip(),
            city=(s.supplier_city or "").strip(),
            postal_code=(s.supplier_postal_code or "").strip(),
            country=country,
        ),
        company_id=(s.supplier_company_id or "").strip(),
        tax_id=(s.supplier_tax_id or "").strip(),
        vat_id=(s.supplier_vat_id or "").strip() or None,
        vat_payer=s.supplier_vat_payer,
        register_entry=(s.supplier_register_entry or "").strip(),
        bank_account=account,
        bic=(s.supplier_bic or "").strip() or None,
        email=(s.supplier_email or "").strip() or None,
        phone=(s.supplier_phone or "").strip() or None,
    )
    problems = documents.supplier_problems(found)
    if not account:
        problems.append(f"supplier.bank_account: none, and no {currency} account")
    if problems:
        raise ConfigError("; ".join(_named(p) for p in problems))
    return found


def _named(problem: str) -> str:
    """A supplier problem (``supplier.company_id: ...``) under the variable to change."""
    field, _, why = problem.partition(": ")
    setting = SUPPLIER_FIELDS.get(field)
    if setting is None:
        return problem
    if field == "supplier.vat_id" and "expected" in why:
        why += f" ({env_name('supplier_vat_payer')}=false for a supplier who is not a VAT payer)"
    return f"{env_name(setting)}: {why}"


def check_supplier(settings: Settings) -> None:
    """The worker's start-up check (``ServiceSpec.startup_checks``); given the runtime's
    settings, the supplier's are read from the environment as the worker would."""
    own = (
        settings
        if isinstance(settings, InvoicingSettings)
        else settings.for_service(InvoicingSettings)
    )
    supplier(own)
