"""The zone's own mail: its one-time links (request access, reset, invitation), support
requests and their acknowledgements, sent through the deployment's SMTP relay
(``BILLING_SMTP_*``, the runtime's ``smtp.send``, as notify's) from the ``mails`` queue,
with retries. docs/zone.md says why the zone sends them itself rather than through notify: a
link is a credential, and an event would keep it in Kafka's log and notify's tables.

The order of one delivery, and why it is safe: claim the row with a lease (committed at
once, so a second instance skips it and a crash only delays it by the lease); send,
touching no database; record the outcome. A crash between sending and recording sends
the message again after the lease: a second copy of a link, never a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
from prometheus_client import Counter

from services.runtime import logs, smtp, sql
from services.runtime.clock import Clock
from services.zone.settings import ZoneSettings

Q = sql.load(__file__)
log = logs.get(__name__)
LEASE_SECONDS = 120.0
MAILS = Counter("billing_zone_mails_total", "The zone's e-mails by outcome", ["outcome"])


def build(
    settings: ZoneSettings, to: str, subject: str, body: str, reply_to: str | None = None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = smtp.recipient(to)
    if reply_to:  # a support request: the operator answers its sender
        msg["Reply-To"] = smtp.recipient(reply_to)
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


class Sender:
    def __init__(self, settings: ZoneSettings, pool: asyncpg.Pool, clock: Clock) -> None:
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.wakeup = asyncio.Event()

    async def send_due(self, limit: int = 50) -> int:
        """Send up to ``limit`` due messages; how many were tried."""
        done = 0
        while done < limit:
            async with self.pool.acquire() as conn:
                await self.clock.refresh(conn)
                now = self.clock.now()
                row = await conn.fetchrow(Q.claim_mail, now, LEASE_SECONDS)
                if row is None:
                    return done
                error = await self._transmit(row)
                await self._record(conn, row, now, error)
            done += 1
        return done

    async def _transmit(self, row: Any) -> smtp.SmtpError | None:
        try:
            await smtp.send(self.settings, build(self.settings, *_parts(row)))
        except smtp.SmtpError as exc:
            return exc
        except Exception as exc:  # a library's surprise: this message's failure, retried
            log.exception("unexpected error sending a zone mail", id=row["id"])
            return smtp.SmtpError(f"{type(exc).__name__}: {exc}", False, "internal")
        return None

    async def _record(
        self, conn: asyncpg.Connection, row: Any, now: datetime, error: smtp.SmtpError | None
    ) -> None:
        if error is None:
            await conn.execute(Q.mail_sent, row["id"], now)
            MAILS.labels("sent").inc()
            return
        attempts = row["attempts"] + 1
        if error.permanent or attempts >= self.settings.zone_mail_max_attempts:
            await conn.execute(Q.mail_failed, row["id"], str(error))
            MAILS.labels("failed").inc()
            log.error("zone mail failed for good", id=row["id"], error=str(error))
            return
        delay = timedelta(seconds=self.settings.zone_mail_retry_base * 2 ** (attempts - 1))
        await conn.execute(Q.mail_retry, row["id"], now + delay, str(error))
        MAILS.labels("retried").inc()
        log.warning("zone mail not sent; retried", id=row["id"], error=str(error))

    async def run(self, poll: float) -> None:
        """Send what is due, then wait for a wake-up (a new message) or the poll."""
        while True:
            try:
                await self.send_due()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("zone mail round failed; retried", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), poll)
            self.wakeup.clear()


def _parts(row: Any) -> tuple[str, str, str, str | None]:
    return row["recipient"], row["subject"], row["body"], row["reply_to"]
