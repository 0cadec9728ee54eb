"""A development SMTP server (aiosmtpd) that keeps every message it receives: in memory for
the demo and tests, and as .eml files in a folder for a person to read."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
        return str(part.get_content()) if part is not None else ""


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=default)
        self.sink.add(Received(envelope.mail_from, list(envelope.rcpt_tos), msg), envelope.content)
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, host: str, port: int, folder: Path | None = None) -> None:
        self.messages: list[Received] = []
        self.folder = folder
        self._lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname=host, port=port)

    def add(self, received: Received, raw: bytes) -> None:
        with self._lock:
            self.messages.append(received)
            n = len(self.messages)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{n:05d}.eml").write_bytes(raw)

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if address in m.recipients]

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
