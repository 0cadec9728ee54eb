"""Notify's pure parts: who gets what, every message in every language, money and dates
for the locale, quiet hours, and which failures are worth a retry."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest

from services.notify import domain, templates
from services.notify.domain import ContactInfo, QuietHours
from services.runtime import smtp

OWNER = ContactInfo("Owner", "o@x.cz", "+420602000001", "cs", (), True)
ACCOUNTANT = ContactInfo("Accountant", "u@x.cz", None, "sk", ("billing", "dunning"), False)
ADMIN = ContactInfo("Admin", "a@x.cz", "+420602000003", "en", ("technical",), False)
TWIN = ContactInfo("Owner again", "o@x.cz", None, "cs", ("dunning",), False)


def test_routing_by_category_owner_always_and_one_per_address() -> None:
    got = domain.recipients("reminder", [OWNER, ACCOUNTANT, ADMIN, TWIN], ("email", "sms"))
    assert [(r.channel, r.address, r.language) for r in got] == [
        ("email", "o@x.cz", "cs"),
        ("sms", "+420602000001", "cs"),
        ("email", "u@x.cz", "sk"),
    ]
    assert domain.recipients("restore", [ADMIN], ("email",)) == []


def test_access_contacts_hear_of_access_not_of_reminders() -> None:
    """The zone's "service and access" category (docs/zone.md#contacts) is notify's
    "access": notices, restriction, suspension and restore reach it, reminders and
    invoices do not."""
    noc = ContactInfo("NOC", "noc@x.cz", None, "en", ("access",), False)
    for kind in ("notice", "suspend", "restrict", "restore"):
        assert [r.address for r in domain.recipients(kind, [noc], ("email",))] == ["noc@x.cz"]
    for kind in ("reminder", "invoice", "credit_note"):
        assert domain.recipients(kind, [noc], ("email",)) == [], kind


def context(currency: str = "CZK", minor: int = 123450) -> dict[str, Any]:
    return {
        "contract": "1001",
        "customer_name": "Jan Novák",
        "overdue_minor": minor,
        "currency": currency,
        "account": "2001234561/2010",
        "invoices": [
            {
                "invoice_number": "2026000001",
                "vs": "1001",
                "ss": "2026000001",
                "due_on": "2026-12-15",
                "open_minor": minor,
                "currency": currency,
            }
        ],
    }


@pytest.mark.parametrize("language", templates.LANGUAGES)
@pytest.mark.parametrize("kind", templates.KINDS)
def test_every_kind_renders_in_every_language(kind: str, language: str) -> None:
    msg = templates.render(kind, language, context(), "NetISP")
    assert msg.language == language and msg.subject.endswith("(1001)")
    assert "Jan Novák" in msg.text and "Jan Novák" in msg.html
    assert msg.sms.startswith("NetISP:") and len(msg.sms) <= 160 * 2
    if kind in templates.PAYMENT_KINDS:  # payment details in every payment request
        assert "2001234561/2010" in msg.text and "2026000001" in msg.text
        assert "2001234561/2010" in msg.html and "<table" in msg.html
        if language != "hu":
            assert "1001" in msg.text


@pytest.mark.parametrize(
    ("language", "subject", "amount", "due"),
    [
        ("cs", "Připomínka neuhrazené faktury (1001)", "1\u00a0234,50\u00a0Kč", "15. 12. 2026"),
        ("sk", "Pripomienka neuhradenej faktúry (1001)", "1\u00a0234,50\u00a0CZK", "15. 12. 2026"),
        ("hu", "Fizetési emlékeztető (1001)", "1\u00a0234,50\u00a0CZK", "2026. dec. 15."),
        ("en", "Payment reminder (1001)", "CZK1,234.50", "15 Dec 2026"),
        ("de", "Payment reminder (1001)", "CZK1,234.50", "15 Dec 2026"),  # falls back to en
    ],
)
def test_locale_formats(language: str, subject: str, amount: str, due: str) -> None:
    msg = templates.render("reminder", language, context())
    assert msg.subject == subject
    assert amount in msg.text and due in msg.text


def test_forint_without_decimals_and_hungarian_kozlemeny() -> None:
    msg = templates.render("reminder", "hu", context("HUF", 1234500))
    assert "12\u00a0345\u00a0Ft" in msg.text
    assert "közlemény: 2026000001" in msg.text and "VS" not in msg.text
    assert templates.money(1234550, "HUF", "hu") == "12\u00a0345,50\u00a0Ft"
    assert templates.money(1990, "EUR", "sk") == "19,90\u00a0€"


def test_html_escapes_customer_text() -> None:
    ctx = context()
    ctx["customer_name"] = "<script>x</script>"
    msg = templates.render("notice", "cs", ctx)
    assert "<script>" not in msg.html and "&lt;script&gt;" in msg.html


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "country", "expect"),
    [
        (utc(2026, 12, 18, 8, 0), "CZ", utc(2026, 12, 18, 8, 0)),
        (utc(2026, 12, 18, 18, 59), "CZ", utc(2026, 12, 18, 18, 59)),
        (utc(2026, 12, 18, 19, 0), "CZ", utc(2026, 12, 19, 7, 0)),
        (utc(2026, 12, 19, 2, 0), "HU", utc(2026, 12, 19, 7, 0)),
        (utc(2026, 7, 1, 21, 0), "SK", utc(2026, 7, 2, 6, 0)),  # summer time: UTC+2
    ],
)
def test_quiet_hours_in_the_customers_time_zone(
    now: datetime, country: str, expect: datetime
) -> None:
    quiet = QuietHours.parse("20:00-08:00")
    assert domain.sms_send_at(now, domain.zone_for(country), quiet) == expect


def test_quiet_hours_parsing() -> None:
    assert QuietHours.parse("22:30 - 07:00") == QuietHours(time(22, 30), time(7, 0))
    assert not QuietHours.parse("00:00-00:00").contains(time(3, 0))
    assert QuietHours.parse("01:00-05:00").contains(time(3, 0))
    with pytest.raises(ValueError, match="expected HH:MM-HH:MM"):
        QuietHours.parse("night")


def test_which_failures_are_final() -> None:
    assert smtp.is_permanent(550) and not smtp.is_permanent(451)
    assert not smtp.is_permanent(None)
    assert domain.http_failure_is_permanent(400) and domain.http_failure_is_permanent(401)
    assert not domain.http_failure_is_permanent(429) and not domain.http_failure_is_permanent(503)
    assert not domain.http_failure_is_permanent(None)
