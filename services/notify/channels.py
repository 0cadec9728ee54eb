"""The two ways a message leaves: e-mail over SMTP (the runtime's ``smtp.send``, shared
with the zone: STARTTLS or implicit TLS, optional auth, optional CA bundle) and SMS
through an HTTP gateway (URL, method, headers, basic auth and a Jinja2 body template, so
any gateway's API can be spoken without code).

Both raise ``DeliveryError`` with ``permanent`` telling the sender whether a retry cannot
help (SMTP 5xx, a refused recipient, a gateway's 4xx, an address that fails the contact
rules) or can (SMTP 4xx, a gateway's 5xx or 429, timeouts, refused connections), and a
``reason``: a short fixed word for the failure metric's label and the delivery's record.
The recipient is checked against the contact rules (schemas/contacts.py) before anything
is sent, so a contact stored before those rules (a CR/LF in an address: a header
injection) fails as one undeliverable message instead of raising in the sender.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.message import EmailMessage

import aiohttp
from jinja2 import Environment, StrictUndefined

from schemas import contacts
from services.notify import domain
from services.notify.settings import NotifySettings
from services.runtime import smtp

# DeliveryError.reason, one of:
#   header-injection   the address holds CR or LF (never sent)
#   invalid-recipient  the address fails the contact rules (never sent)
#   invalid-message    the message cannot be built from the delivery (never sent)
#   recipient-refused  the SMTP server refused the recipient
#   rejected           the SMTP server or the SMS gateway refused the message
#   deferred           the server or gateway answered "later" (SMTP 4xx, HTTP 5xx, 429)
#   unreachable        no answer: connection refused or reset, timeout
#   not-configured     no SMS gateway is configured
#   smtp-error         another SMTP failure (a missing extension, say)
#   internal           an unexpected error in the sender


class DeliveryError(Exception):
    def __init__(self, message: str, permanent: bool, reason: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.reason = reason


def _bad_address(exc: contacts.ContactError, address: str) -> DeliveryError:
    injection = "\r" in address or "\n" in address
    return DeliveryError(
        f"recipient {address!r}: {exc}",
        permanent=True,
        reason="header-injection" if injection else "invalid-recipient",
    )


def message_id(key: str) -> str:
    """Stable per delivery, so a resend after a crash is recognisable as the same mail."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@billing>"


class Email:
    """E-mail through the deployment's relay (``services/runtime/smtp.py``, shared with the
    zone): its failures become ``DeliveryError`` with the same reasons."""

    def __init__(self, settings: NotifySettings) -> None:
        self.s = settings
        self.tls_context = smtp.tls_context(settings)

    def build(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None,
        key: str,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> EmailMessage:
        """The message; ``attachments`` are (filename, media type, bytes): a document's
        PDF and ISDOC."""
        try:
            to = smtp.recipient(to)
        except smtp.SmtpError as exc:
            raise DeliveryError(str(exc), exc.permanent, exc.reason) from None
        try:
            msg = EmailMessage()
            msg["From"] = self.s.mail_from
            msg["To"] = to
            msg["Subject"] = subject
            msg["Message-ID"] = message_id(key)
            msg.set_content(text)
            if html:
                msg.add_alternative(html, subtype="html")
            for filename, media_type, content in attachments:
                maintype, _, subtype = media_type.partition("/")
                msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(f"message not built: {exc}", True, "invalid-message") from exc
        return msg

    async def send(self, msg: EmailMessage) -> None:
        try:
            await smtp.send(self.s, msg, self.tls_context)
        except smtp.SmtpError as e:
            raise DeliveryError(str(e), e.permanent, e.reason) from e


class SmsGateway:
    def __init__(self, settings: NotifySettings) -> None:
        self.s = settings
        env = Environment(undefined=StrictUndefined, autoescape=False)
        self.body = env.from_string(settings.sms_gateway_body)

    async def send(self, to: str, text: str, key: str) -> None:
        if not self.s.sms_gateway_url:
            raise DeliveryError(
                "no SMS gateway configured (BILLING_SMS_GATEWAY_URL)", True, "not-configured"
            )
        try:
            to = contacts.phone_number(to)
        except contacts.ContactError as exc:
            raise _bad_address(exc, to) from None
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            body = self.body.render(to=to, text=text, sender=self.s.sms_sender, id=digest)
        except Exception as exc:  # the configured template: any error it raises
            raise DeliveryError(f"message not built: {exc!r}", True, "invalid-message") from exc
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
                final = domain.http_failure_is_permanent(resp.status)
                raise DeliveryError(
                    f"gateway HTTP {resp.status}: {reply}",
                    final,
                    "rejected" if final else "deferred",
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise DeliveryError(
                f"gateway unreachable: {type(e).__name__}: {e}", False, "unreachable"
            ) from e
