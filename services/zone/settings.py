"""The customer zone's own settings, besides the runtime's (``BILLING_*``,
docs/configuration.md): where its pages listen, the secret keying its form tokens, its
cookies, the one-time links, login throttling, the support address and help channels,
and the mail relay its links go through
(the runtime's ``MailRelaySettings``: the same ``BILLING_SMTP_*`` as notify's, one relay
per deployment; docs/zone.md says why the zone sends its own mail)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from schemas import contacts
from schemas.coupons import Coupon, checked_coupons, default_coupons, parse_coupon
from schemas.pricelist import PriceList, PriceListError
from schemas.pricelist import load as load_price_list
from services.runtime.auth import ConfigError, signing_key
from services.runtime.settings import MailRelaySettings, env_name
from services.zone.domain import LANGUAGES


class ZoneSettings(MailRelaySettings):
    SECRETS: ClassVar[tuple[str, ...]] = (*MailRelaySettings.SECRETS, "zone_secret")

    zone_host: str = "127.0.0.1"
    zone_port: int = 8090
    # The address customers reach the zone at: the links in its e-mails point there, and a
    # form post whose Origin is neither this nor the request's own host is refused.
    zone_public_url: str = "http://127.0.0.1:8090/"
    # Keys the form (CSRF) tokens: at least 32 characters, required in production.
    zone_secret: SecretStr | None = None
    zone_secret_file: Path | None = None
    # Session cookies are Secure (sent over HTTPS only); false only for plain-http
    # development, and refused in production.
    zone_cookie_secure: bool = True
    zone_session_hours: float = Field(default=12.0, gt=0)
    zone_link_hours: float = Field(default=24.0, gt=0)  # request access, password reset
    zone_invite_days: float = Field(default=7.0, gt=0)
    # Failed logins within the window lock an account (the name typed, whether or not it
    # exists) or a client address until the window has passed since the last failure.
    zone_throttle_minutes: float = Field(default=15.0, gt=0)
    zone_throttle_account: int = Field(default=5, ge=1)
    zone_throttle_address: int = Field(default=20, ge=1)
    # Addresses or prefixes of reverse proxies whose X-Forwarded-For the zone believes.
    zone_trusted_proxies: list[str] = Field(default_factory=list)
    zone_mail_max_attempts: int = Field(default=8, ge=1)
    zone_mail_retry_base: float = Field(default=2.0, gt=0)
    # The operator's address for support requests and customers' changes of their contact
    # details (unset: the support form is closed and changes are in the trail only).
    zone_support_email: str | None = None
    # In which language the zone writes to the operator.
    zone_operator_language: str = "cs"
    # The help channels shown on the support page and in every page's footer.
    zone_help_phone: str | None = None
    zone_help_email: str | None = None
    zone_help_hours: str | None = None
    # The VoIP top-up coupons the top-up page offers: the same BILLING_TOPUP_COUPONS as
    # invoicing decides requests by, read and checked by the same function (docs/zone.md).
    topup_coupons: dict[str, str] = Field(default_factory=default_coupons)
    # The call-price lookup on the calls page: the same BILLING_VOIP_PRICE_LIST and country
    # prefix as voip rates by (schemas/pricelist.py reads both); unset: no lookup offered.
    voip_price_list: Path | None = None
    voip_country_prefix: str = Field(default="420", pattern=r"^[1-9][0-9]{0,3}$")

    @model_validator(mode="after")
    def _coupons(self) -> ZoneSettings:
        given = "topup_coupons" in self.model_fields_set
        names = (env_name("topup_coupons"), env_name("bank_accounts"))
        offered = checked_coupons(self.topup_coupons, given, self.bank_accounts, names)
        object.__setattr__(self, "topup_coupons", offered)
        return self

    def coupons_in(self, currency: str) -> list[Coupon]:
        """The coupons offered in ``currency``, smallest first."""
        found = [parse_coupon(code, text) for code, text in self.topup_coupons.items()]
        return sorted((c for c in found if c.currency == currency), key=lambda c: c.amount_minor)

    def price_list(self) -> PriceList | None:
        """The operator's price list, read and checked whole (a bad one refuses to start, as
        voip does), or None when none is set."""
        if self.voip_price_list is None:
            return None
        try:
            return load_price_list(str(self.voip_price_list))
        except PriceListError as e:
            raise ConfigError(f"{env_name('voip_price_list')}: {e}") from None
        except OSError as e:
            raise ConfigError(
                f"{env_name('voip_price_list')}: {self.voip_price_list}: {e.strerror}"
            ) from None


_DEVELOPMENT_KEY = secrets.token_bytes(32)  # per process: no published development default


def zone_key(settings: ZoneSettings) -> bytes:
    """The key of the zone's form tokens: ``BILLING_ZONE_SECRET_FILE`` (or
    ``BILLING_ZONE_SECRET``), at least 32 characters. Development without one gets a
    random key of this process (forms open before a restart must be reloaded after it);
    production refuses to start without one."""
    return signing_key(settings, "zone_secret", _DEVELOPMENT_KEY)


def check_settings(settings: ZoneSettings) -> None:
    """What the zone refuses to start without: its secret; Secure cookies in production."""
    zone_key(settings)
    if not settings.zone_cookie_secure and settings.environment == "production":
        raise ConfigError(
            f"{env_name('zone_cookie_secure')}=false would send session cookies over plain"
            f" HTTP: refused with {env_name('environment')}=production"
        )
    if not settings.zone_public_url.startswith(("http://", "https://")):
        raise ConfigError(f"{env_name('zone_public_url')}: expected an http(s):// address")
    check_help(settings)


def check_help(settings: ZoneSettings) -> None:
    """The support address and help channels, refused at start naming the variable: an
    address the relay could not deliver to would lose every support request."""
    rules = (
        ("zone_support_email", contacts.email_address),
        ("zone_help_email", contacts.email_address),
        ("zone_help_phone", _help_phone),
        ("zone_help_hours", _help_hours),
    )
    for name, check in rules:
        value = getattr(settings, name)
        if value is not None:
            try:
                check(value)
            except ValueError as exc:
                raise ConfigError(f"{env_name(name)}={value!r}: {exc}") from None
    if settings.zone_operator_language not in LANGUAGES:
        raise ConfigError(
            f"{env_name('zone_operator_language')}: expected one of {', '.join(LANGUAGES)}"
        )


def _help_phone(value: str) -> str:
    contacts.phone_number(value)
    return value  # shown as the operator wrote it ("+420 800 123 456")


def _help_hours(value: str) -> str:
    contacts.plain_text(value)
    if not value.strip() or len(value) > 200:
        raise ValueError("expected a short text such as 'Mo-Fr 8-18'")
    return value
