"""Provisioning's own settings, besides the runtime's (``BILLING_*``,
docs/configuration.md): the notice page, and the secret keying its form tokens, without
which provisioning does not start in production."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from services.runtime.auth import signing_key
from services.runtime.settings import Settings

# The notice page's key outside production when none is set: known to everybody, so a
# development stack's forms are as forgeable as they are anywhere nobody cares.
DEVELOPMENT_NOTICE_SECRET = "development notice secret, never for production use"
# The former built-in default, refused wherever it turns up.
RETIRED_NOTICE_DEFAULTS = frozenset({"change-me-in-production", DEVELOPMENT_NOTICE_SECRET})


class ProvisioningSettings(Settings):
    SECRETS: ClassVar[tuple[str, ...]] = (*Settings.SECRETS, "notice_secret")

    notice_host: str = "127.0.0.1"
    notice_port: int = 8080
    notice_public_url: str = "http://127.0.0.1:8080/"
    # Keys the notice page's form tokens (at least 32 characters; required in production).
    notice_secret: SecretStr | None = None
    notice_secret_file: Path | None = None
    # Addresses or prefixes of reverse proxies whose X-Forwarded-For the notice page
    # believes (the rightmost address not among them is the customer's).
    notice_trusted_proxies: list[str] = Field(default_factory=list)


def notice_key(settings: ProvisioningSettings) -> bytes:
    """The key of the notice page's form tokens: ``BILLING_NOTICE_SECRET_FILE`` (or
    ``BILLING_NOTICE_SECRET``), at least 32 characters, never a published default; in
    development only, a missing one falls back to a fixed development key."""
    return signing_key(
        settings, "notice_secret", DEVELOPMENT_NOTICE_SECRET.encode(), RETIRED_NOTICE_DEFAULTS
    )
