"""Notify's own settings, besides the runtime's (``BILLING_*``, docs/configuration.md):
the mail relay (the runtime's ``MailRelaySettings``), the SMS gateway, delivery attempts."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from services.runtime.settings import MailRelaySettings


class NotifySettings(MailRelaySettings):
    SECRETS: ClassVar[tuple[str, ...]] = (*MailRelaySettings.SECRETS, "sms_gateway_password")

    # SMS over an HTTP gateway: the body is a Jinja2 template with to, text, sender, id.
    sms_gateway_url: str | None = None
    sms_gateway_method: str = "POST"
    sms_gateway_content_type: str = "application/json"
    sms_gateway_headers: dict[str, str] = Field(default_factory=dict)
    sms_gateway_username: str | None = None
    sms_gateway_password: SecretStr | None = None
    sms_gateway_password_file: Path | None = None
    sms_gateway_body: str = (
        '{"to": {{ to|tojson }}, "text": {{ text|tojson }}, "sender": {{ sender|tojson }},'
        ' "id": {{ id|tojson }}}'
    )
    sms_sender: str = "ISP"
    # No SMS in these local hours (the customer's country's time zone); e-mail any time.
    sms_quiet_hours: str = "20:00-08:00"
    sms_quiet_hours_by_country: dict[str, str] = Field(default_factory=dict)
    notify_max_attempts: int = 6
    notify_retry_base: float = 2.0
