"""One message handed to the deployment's SMTP relay (``BILLING_SMTP_*``, the runtime's
``MailRelaySettings``): the one send every service that mails uses (notify's messages,
the zone's links and support requests).

``SmtpError`` says whether trying again can help (``permanent``: an SMTP 5xx answer, a
refused recipient, an address that fails the contact rules) and why, in a short fixed
word (``reason``) a caller can count and record:

  header-injection   the address holds CR or LF (never sent)
  invalid-recipient  the address fails the contact rules (never sent)
  recipient-refused  the server refused the recipient (5xx)
  rejected           the server refused the message (5xx)
  deferred           the server answered "later" (4xx)
  unreachable        no answer: connection refused or reset, timeout
  smtp-error         another SMTP failure (a missing extension, say)
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from schemas import contacts
from services.runtime.settings import MailRelaySettings


class SmtpError(Exception):
    def __init__(self, message: str, permanent: bool, reason: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.reason = reason


def is_permanent(code: int | None) -> bool:
    """SMTP 5xx replies are final (bad address, rejected); 4xx and no reply are worth a retry."""
    return code is not None and 500 <= code < 600


def recipient(address: str) -> str:
    """``address`` as the contact rules normalise it, checked before it goes into a
    ``To`` header: a CR/LF stored before those rules is a header injection, refused here
    as one undeliverable message."""
    try:
        return contacts.email_address(address)
    except contacts.ContactError as exc:
        injection = "\r" in address or "\n" in address
        raise SmtpError(
            f"recipient {address!r}: {exc}",
            permanent=True,
            reason="header-injection" if injection else "invalid-recipient",
        ) from None


def tls_context(settings: MailRelaySettings) -> ssl.SSLContext | None:
    """The context verifying the relay against ``BILLING_SMTP_CA_FILE``; None: the system's."""
    if not settings.smtp_ca_file:
        return None
    return ssl.create_default_context(cafile=settings.smtp_ca_file)


async def send(
    settings: MailRelaySettings, msg: EmailMessage, context: ssl.SSLContext | None = None
) -> None:
    """Hand ``msg`` to the relay (STARTTLS or implicit TLS, optional login, the timeout of
    ``BILLING_SMTP_TIMEOUT``); raises ``SmtpError``. ``context``: a caller's TLS context
    made once (``tls_context``), else one made for this message."""
    try:
        await aiosmtplib.send(
            msg,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.secret("smtp_password"),
            start_tls=True if settings.smtp_starttls else None,
            use_tls=settings.smtp_tls,
            tls_context=context if context is not None else tls_context(settings),
            timeout=settings.smtp_timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as e:
        # one recipient a message: its RCPT TO reply
        codes = [r.code for r in e.recipients]
        final = bool(codes) and all(is_permanent(c) for c in codes)
        replies = "; ".join(f"SMTP {r.code}: {r.message}" for r in e.recipients)
        raise SmtpError(
            f"recipient refused: {replies}", final, "recipient-refused" if final else "deferred"
        ) from e
    except aiosmtplib.SMTPResponseException as e:
        final = is_permanent(e.code)
        raise SmtpError(
            f"SMTP {e.code}: {e.message}", final, "rejected" if final else "deferred"
        ) from e
    except (OSError, TimeoutError) as e:  # refused, reset, timed out (SMTP's too)
        raise SmtpError(f"{type(e).__name__}: {e}", False, "unreachable") from e
    except aiosmtplib.SMTPException as e:
        raise SmtpError(f"{type(e).__name__}: {e}", False, "smtp-error") from e
