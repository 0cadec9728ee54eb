"""The customer zone's pure decisions (services/zone/domain.py), its wording in four
languages, and what its settings refuse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.runtime.auth import ConfigError
from services.zone import domain
from services.zone.settings import ZoneSettings, check_settings, zone_key
from services.zone.web import WORDING

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)


def test_rights_are_known_names_in_one_order() -> None:
    assert domain.parse_rights(["users", " invoices", ""]) == ("invoices", "users")
    with pytest.raises(domain.RightsError, match="unknown right 'admin'"):
        domain.parse_rights(["invoices", "admin"])


def test_the_owner_may_everything_a_member_what_was_granted() -> None:
    owner = domain.Membership(1, "1001", True, ())
    member = domain.Membership(2, "1001", False, ("payments",))
    assert all(owner.may(r) for r in domain.RIGHTS)
    assert member.may("payments") and not member.may("invoices")
    with pytest.raises(domain.RightsError):
        member.may("everything")


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        ((1, "1001", True, ()), (2, "1001", False, ("invoices",)), True),
        ((3, "1001", False, ("users",)), (2, "1001", False, ()), True),
        ((3, "1001", False, ("invoices",)), (2, "1001", False, ()), False),  # no right
        ((3, "1001", False, ("users",)), (1, "1001", True, ()), False),  # the owner
        ((3, "1001", False, ("users",)), (3, "1001", False, ("users",)), False),  # oneself
        ((1, "1001", True, ()), (2, "1002", False, ()), False),  # another customer
    ],
)
def test_who_may_change_whom(actor: tuple, target: tuple, allowed: bool) -> None:  # type: ignore[type-arg]
    assert domain.may_change(domain.Membership(*actor), domain.Membership(*target)) is allowed


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("1001", ("contract", "1001")),
        (" 1001 ", ("contract", "1001")),
        ("Alena@Example.COM", ("email", "alena@example.com")),
        ("0123", None),  # no contract number starts with 0
        ("alena", None),
        ("a b@example.com", None),
        ("", None),
    ],
)
def test_a_login_name_is_a_customer_number_or_an_email(typed: str, name: object) -> None:
    assert domain.login_name(typed) == name


def test_a_password_is_long_enough_not_too_long_and_not_the_email() -> None:
    assert domain.password_problem("short", "a@b.cz") == "too_short"
    assert domain.password_problem("x" * 2000, "a@b.cz") == "too_long"
    assert domain.password_problem("Alena@Example.com", "alena@example.com") == "is_email"
    assert domain.password_problem("correct horse battery", "a@b.cz") is None


def test_failed_logins_lock_until_enough_have_left_the_window() -> None:
    window = timedelta(minutes=15)
    failures = [NOW - timedelta(minutes=m) for m in (20, 10, 5, 1)]  # 3 within the window
    assert domain.locked_until(failures, 4, window, NOW) is None
    # the limit 3: locked until the oldest of the three recent ones is 15 minutes old
    assert domain.locked_until(failures, 3, window, NOW) == NOW - timedelta(minutes=10) + window
    assert domain.locked_until(failures, 3, window, NOW + timedelta(minutes=6)) is None
    assert domain.locked_until(failures, 2, window, NOW) == NOW - timedelta(minutes=5) + window
    assert domain.locked_until([], 1, window, NOW) is None


@pytest.mark.parametrize(
    ("chosen", "accept", "lang"),
    [
        ("sk", "hu", "sk"),
        (None, "hu-HU,hu;q=0.9,en;q=0.8", "hu"),
        ("de", "de-DE, en;q=0.5", "en"),
        (None, None, "cs"),
        ("", "fr", "cs"),
    ],
)
def test_the_page_speaks_the_chosen_language_else_the_browsers(
    chosen: str | None, accept: str | None, lang: str
) -> None:
    assert domain.pick_language(chosen, accept) == lang


@pytest.mark.parametrize(
    ("args", "view"),
    [
        ((49900, False, None, None, None, False), ("open", 0, 49900)),
        ((49900, False, None, None, None, True), ("overdue", 0, 49900)),
        ((49900, False, "partially_paid", 10000, 39900, False), ("partially_paid", 10000, 39900)),
        ((49900, False, "paid", 49800, 0, True), ("paid", 49800, 0)),
        ((49900, False, "open", 20000, 29900, True), ("overdue", 20000, 29900)),  # reopened
        ((49900, True, None, None, None, True), ("cancelled", 0, 0)),
    ],
)
def test_the_state_an_invoice_shows(args: tuple, view: tuple) -> None:  # type: ignore[type-arg]
    shown = domain.invoice_view(*args)
    assert (shown.state, shown.paid_minor, shown.open_minor) == view


def test_a_form_token_fits_only_its_session_and_key() -> None:
    key = b"k" * 32
    token = domain.form_token(key, "session-a")
    assert domain.form_token_fits(key, "session-a", token)
    assert not domain.form_token_fits(key, "session-b", token)
    assert not domain.form_token_fits(b"o" * 32, "session-a", token)
    assert not domain.form_token_fits(key, "", domain.form_token(key, ""))


@pytest.mark.parametrize(
    ("origin", "fetch_site", "cross"),
    [
        (None, None, False),  # no browser following another site's form
        ("https://zone.example", "same-origin", False),
        ("https://ZONE.example/", None, False),
        ("https://evil.example", None, True),
        ("null", None, True),
        (None, "cross-site", True),
        ("https://zone.example", "same-site", True),
    ],
)
def test_a_post_from_another_sites_page_is_cross_site(
    origin: str | None, fetch_site: str | None, cross: bool
) -> None:
    assert domain.cross_site(origin, fetch_site, frozenset({"https://zone.example"})) is cross


def test_every_language_has_every_text_with_the_same_placeholders() -> None:
    assert set(WORDING) == set(domain.LANGUAGES)
    fields = re.compile(r"\{(\w+)\}")
    english = WORDING["en"]
    for lang, texts in WORDING.items():
        assert set(texts) == set(english), lang
        for key, text in texts.items():
            assert set(fields.findall(text)) == set(fields.findall(english[key])), (lang, key)
    for right in domain.RIGHTS:
        assert f"right_{right}" in english


def test_production_refuses_a_missing_or_short_secret_and_plain_http_cookies(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"no zone secret.*BILLING_ZONE_SECRET_FILE"):
        check_settings(ZoneSettings(environment="production"))
    short = tmp_path / "short"
    short.write_text("too short\n")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        check_settings(ZoneSettings(environment="production", zone_secret_file=short))
    good = tmp_path / "good"
    good.write_text("a" * 64 + "\n")
    check_settings(ZoneSettings(environment="production", zone_secret_file=good))
    with pytest.raises(ConfigError, match="BILLING_ZONE_COOKIE_SECURE=false"):
        check_settings(
            ZoneSettings(environment="production", zone_secret_file=good, zone_cookie_secure=False)
        )
    # development: a random key of the process, never a published one
    key = zone_key(ZoneSettings(environment="development"))
    assert len(key) == 32 and key == zone_key(ZoneSettings(environment="development"))
