"""The traffic service's own settings, besides the runtime's (``BILLING_*``,
docs/configuration.md): when an hour is closed and how long buckets are kept."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import Settings


class TrafficSettings(Settings):
    # the gear's report interval (BILLING_GEAR_TRAFFIC_INTERVAL): an hour is closed, and
    # published as traffic.hour.v1, one interval after its end
    traffic_report_interval: float = Field(default=300.0, gt=0)
    # how long 5-minute buckets and hours are kept (days are kept for ever)
    traffic_keep_5min_days: int = Field(default=7, ge=1)
    traffic_keep_hour_days: int = Field(default=90, ge=1)
    # seconds between two deletions of buckets older than that
    traffic_retention_interval: float = Field(default=3600.0, gt=0)
