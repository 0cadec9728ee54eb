"""Dunning's own settings, besides the runtime's (``BILLING_*``, docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import Settings


class DunningSettings(Settings):
    # The policy of a contract without one of its own; per contract group; a folder of the
    # operator's own policy files (TOML) beside the presets.
    dunning_default_policy: str = "notice-then-suspend"
    dunning_group_policies: dict[str, str] = Field(default_factory=dict)
    dunning_policy_dir: str | None = None
