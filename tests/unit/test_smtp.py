"""One SMTP send for every service that mails (services/runtime/smtp.py): notify and the
zone both call it, neither keeps a copy of its own; what a failure means is decided once."""

from __future__ import annotations

import ast
import asyncio
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.devstack.stack import free_port
from services.runtime import smtp
from services.runtime.settings import MailRelaySettings

ROOT = Path(__file__).resolve().parents[2]


def _imports_aiosmtplib(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "aiosmtplib" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiosmtplib"):
            return True
    return False


def test_only_the_runtime_speaks_smtp() -> None:
    files = (ROOT / "services").rglob("*.py")
    speakers = sorted(str(p.relative_to(ROOT)) for p in files if _imports_aiosmtplib(p))
    assert speakers == ["services/runtime/smtp.py"]


def test_a_recipient_is_checked_before_it_becomes_a_header() -> None:
    assert smtp.recipient("Alena@Example.COM") == "Alena@example.com"
    with pytest.raises(smtp.SmtpError) as injected:
        smtp.recipient("a@example.com\r\nBcc: all@example.com")
    assert (injected.value.permanent, injected.value.reason) == (True, "header-injection")
    with pytest.raises(smtp.SmtpError) as bad:
        smtp.recipient("not an address")
    assert (bad.value.permanent, bad.value.reason) == (True, "invalid-recipient")


def test_which_answers_are_final() -> None:
    assert smtp.is_permanent(550) and smtp.is_permanent(554)
    assert not smtp.is_permanent(451) and not smtp.is_permanent(None)


def test_no_relay_listening_is_worth_a_retry() -> None:
    settings = MailRelaySettings(smtp_port=free_port(), smtp_timeout=2.0)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "x"
    msg.set_content("x")
    with pytest.raises(smtp.SmtpError) as refused:
        asyncio.run(smtp.send(settings, msg))
    assert (refused.value.permanent, refused.value.reason) == (False, "unreachable")
