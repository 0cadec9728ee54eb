"""The reference gear's settings (``billing gear nftables``), besides the runtime's
(``BILLING_*``, docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from services.runtime.settings import Settings


class GearSettings(Settings):
    SECRETS: ClassVar[tuple[str, ...]] = (*Settings.SECRETS, "gear_snapshot_token")

    # Where HTTP of customers in notice goes, what stays reachable when suspended, how fast
    # restricted customers may go.
    gear_table: str = "billing"
    gear_notice4: str | None = None  # "192.0.2.1:8080"
    gear_notice6: str | None = None  # "[2001:db8::1]:8080"
    gear_walled_garden: list[str] = Field(default_factory=list)  # addresses or prefixes
    gear_restrict_rate: str = "1 mbytes/second"
    gear_nft_command: str = "nft"  # e.g. "ip netns exec gw nft", "ssh gw nft"
    gear_snapshot_url: str = "http://127.0.0.1:9104/access"
    # an operator token (services/runtime/auth.py) the gear sends to GET /access
    gear_snapshot_token: SecretStr | None = None
    gear_snapshot_token_file: Path | None = None
    gear_resync_interval: float = 300.0
    # seconds between two reports of the per-address byte counters (traffic.counters.v1);
    # 0: no counting (the counters' table is left as it is)
    gear_traffic_interval: float = Field(default=300.0, ge=0)
