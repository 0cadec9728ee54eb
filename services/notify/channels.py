"""The two ways a message leaves: e-mail over SMTP (aiosmtplib; STARTTLS or implicit TLS,
optional auth, optional CA bundle) and SMS through an HTTP gateway (URL, method, headers,
basic auth and a Jinja2 body template, so any gateway's API can be spoken without code).

Both raise ``DeliveryError`` with ``permanent`` telling the sender whether a retry can
help (SMTP 5xx, gateway 4xx) or not (4xx/5xx transient replies, timeouts, refused
connections).
"""

from __future__ import annotations

import hashlib
import ssl
from email.message import EmailMessage

import aiohttp
import aiosmtplib
from jinja2 import Environment, StrictUndefined

from services.notify import domain
from services.runtime.settings import Settings


class DeliveryError(Exception):
    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def message_id(key: str) -> str:
    """Stable per delivery, so a resend after a crash is recognisable as the same mail."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@billing>"


class Email:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.tls_context: ssl.SSLContext | None = None
        if settings.smtp_ca_file:
            self.tls_context = ssl.create_default_context(cafile=settings.smtp_ca_file)

    def build(self, to: str, subject: str, text: str, html: str | None, key: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.s.mail_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = message_id(key)
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
        return msg

    async def send(self, msg: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.s.smtp_host,
                port=self.s.smtp_port,
                username=self.s.smtp_username,
                password=self.s.secret("smtp_password"),
                start_tls=True if self.s.smtp_starttls else None,
                use_tls=self.s.smtp_tls,
                tls_context=self.tls_context,
                timeout=self.s.smtp_timeout,
            )
        except aiosmtplib.SMTPResponseException as e:
            raise DeliveryError(
                f"SMTP {e.code}: {e.message}", domain.smtp_failure_is_permanent(e.code)
            ) from e
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise DeliveryError(f"{type(e).__name__}: {e}", permanent=False) from e


class SmsGateway:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        env = Environment(undefined=StrictUndefined, autoescape=False)
        self.body = env.from_string(settings.sms_gateway_body)

    async def send(self, to: str, text: str, key: str) -> None:
        if not self.s.sms_gateway_url:
            raise DeliveryError("no SMS gateway configured (BILLING_SMS_GATEWAY_URL)", True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        body = self.body.render(to=to, text=text, sender=self.s.sms_sender, id=digest)
        headers = {
            "Content-Type": self.s.sms_gateway_content_type,
            "Idempotency-Key": digest,
            **self.s.sms_gateway_headers,
        }
        auth = None
        if self.s.sms_gateway_username:
            password = self.s.secret("sms_gateway_password") or ""
            auth = aiohttp.BasicAuth(self.s.sms_gateway_username, password)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
                http.request(
                    self.s.sms_gateway_method,
                    self.s.sms_gateway_url,
                    data=body.encode(),
                    headers=headers,
                    auth=auth,
                ) as resp,
            ):
                if 200 <= resp.status < 300:
                    return
                reply = (await resp.text())[:200]
                raise DeliveryError(
                    f"gateway HTTP {resp.status}: {reply}",
                    domain.http_failure_is_permanent(resp.status),
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise DeliveryError(f"gateway unreachable: {type(e).__name__}: {e}", False) from e
