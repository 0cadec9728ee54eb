"""Bank import's own settings (``billing fio fetch``), besides the runtime's (``BILLING_*``,
docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import SecretStr

from services.runtime.settings import Settings


class BankImportSettings(Settings):
    SECRETS: ClassVar[tuple[str, ...]] = (*Settings.SECRETS, "fio_token")

    # Fio banka API: token, and its one-request-per-30-s limit.
    fio_token: SecretStr | None = None
    fio_token_file: Path | None = None
    fio_base_url: str = "https://fioapi.fio.cz/v1/rest"
    fio_min_interval: float = 30.0
