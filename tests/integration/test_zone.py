"""The customer zone's identity and security, against a real PostgreSQL and SMTP server
(tests/integration/zone_harness.py): request access by contract number and the e-mail on
record (the answer never says whether they matched), the e-mailed one-time link, the
password, login by e-mail or customer number; another customer's invoice, payment or
person by direct URL answers as one that does not exist; every form refused without its
token or from another site; no session fixation; brute force throttled per account and
per address; a removed right or user counts from the next request."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from services.cli import main as billing
from services.runtime.settings import get_settings
from tests.integration.zone_harness import (
    Zone,
    contract,
    invoice,
    login,
    owner_with_login,
    payment,
    post,
    running_zone,
    set_password,
    token,
)

PASSWORD = "correct horse battery"
DUE = date(2026, 12, 15)


async def test_request_access_link_password_and_login(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        await zone.feed(
            contract("1001", "alena@example.com", "Alena Svobodová", others=("ucetni@example.com",))
        )
        browser = await zone.client()
        answers = []
        for number, address in (
            ("1001", "Alena@Example.com"),  # the owner's, in another case: a link
            ("1001", "nobody@example.com"),  # not on record
            ("9999", "alena@example.com"),  # no such contract
            ("1001", "ucetni@example.com"),  # on record, but a contact, not the owner
            ("abc", "not an address"),
        ):
            resp = await post(browser, "/access", {"contract": number, "email": address})
            answers.append((resp.status, await resp.text()))
        assert len(set(answers)) == 1 and answers[0][0] == 200  # the same page, every time
        assert await zone.deliver() == 1
        assert [m.recipients for m in zone.mail.messages] == [["alena@example.com"]]
        mail = zone.mail.messages[0]
        assert "1001" in mail.body and "http://zone.example/link/" in mail.body
        link = zone.link_to("alena@example.com")

        # A password too short is refused and the link stays usable.
        resp = await post(browser, link, {"password": "short", "password2": "short"}, page=link)
        assert resp.status == 400
        resp = await post(browser, link, {"password": PASSWORD, "password2": PASSWORD}, page=link)
        assert (resp.status, resp.headers["Location"]) == (303, "/login?done=password_set")
        # One time only.
        async with browser.get(link) as again:
            assert again.status == 404
        # The sent body (a live link) is not kept.
        [row] = await zone.fetch("SELECT status, body FROM mails")
        assert (row["status"], row["body"]) == ("sent", "")

        resp = await login(browser, "alena@example.com", PASSWORD)
        assert (resp.status, resp.headers["Location"]) == (303, "/info")
        async with browser.get("/info") as page:
            assert page.status == 200 and "Alena Svobodová" in await page.text()
        # By customer number too (the owner's login), from another browser.
        other = await zone.client()
        resp = await login(other, "1001", PASSWORD)
        assert (resp.status, resp.headers["Location"]) == (303, "/info")

        actions = [r["action"] for r in await zone.fetch("SELECT action FROM audit ORDER BY id")]
        assert actions == ["access_requested"] * 5 + ["link_used_access", "login", "login"]
        with pytest.raises(Exception, match="append-only"):
            await zone.fetch("DELETE FROM audit")


async def _two_customers(zone: Zone) -> tuple[object, object]:
    await zone.feed(
        contract("1001", "alena@example.com", "Alena"),
        contract("1002", "bohumil@example.com", "Bohumil"),
        invoice("1001", "2026000001", DUE),
        invoice("1002", "2026000002", DUE),
        payment("1001", "2026000001", "1", 49900, "tx-a"),
        payment("1002", "2026000002", "2", 49900, "tx-b"),
    )
    alena, bohumil = await zone.client(), await zone.client()
    await owner_with_login(zone, alena, "1001", "alena@example.com", PASSWORD)
    await owner_with_login(zone, bohumil, "1002", "bohumil@example.com", PASSWORD)
    return alena, bohumil


async def test_another_customers_ids_answer_as_ones_that_do_not_exist(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        alena, _ = await _two_customers(zone)
        [(theirs_payment,)] = await zone.fetch("SELECT id FROM payments WHERE contract = '1002'")
        [(theirs_person,)] = await zone.fetch(
            "SELECT id FROM people WHERE email = 'bohumil@example.com'"
        )
        [(own_payment,)] = await zone.fetch("SELECT id FROM payments WHERE contract = '1001'")
        async with alena.get("/invoices/2026000001") as own:
            assert own.status == 200 and "2026000001" in await own.text()
        async with alena.get(f"/payments/{own_payment}") as own:
            assert own.status == 200
        for theirs, missing in (
            ("/invoices/2026000002", "/invoices/2026999999"),
            (f"/payments/{theirs_payment}", "/payments/999999"),
            (f"/users/{theirs_person}", "/users/999999"),
        ):
            async with alena.get(theirs) as a, alena.get(missing) as b:
                assert a.status == b.status == 404, theirs
                assert await a.text() == await b.text(), theirs
            # and a change to another customer's person the same
            for action in ("rights", "remove"):
                a = await post(alena, f"{theirs}/{action}", {"rights": "invoices"}, page="/users")
                b = await post(alena, f"{missing}/{action}", {"rights": "invoices"}, page="/users")
                if theirs.startswith("/users/"):
                    assert a.status == b.status == 404
                    assert await a.text() == await b.text()
        async with alena.get("/invoices") as page:
            text = await page.text()
        assert "2026000001" in text and "2026000002" not in text and "Bohumil" not in text
        async with alena.get("/payments") as page:
            assert "tx-b" not in await page.text()
        # Acting for a customer one is no member of: refused, nothing switched.
        resp = await post(alena, "/customers", {"contract": "1002"})
        assert resp.status == 404
        async with alena.get("/invoices/2026000002") as theirs:
            assert theirs.status == 404


async def test_every_form_needs_its_token_and_the_zones_own_origin(database_url: str) -> None:
    """Every POST route of the app (found from its table, not listed here) is refused
    without the form token, with another browser's token, and from another site."""
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two_customers(zone)
        [(person,)] = await zone.fetch("SELECT id FROM people WHERE email = 'alena@example.com'")
        posts = [r.path for r in zone.pages.routes() if r.method == "POST"]
        assert {"/login", "/access", "/reset", "/users/invite", "/password"} <= set(posts)
        own = await token(alena, "/info")
        theirs = await token(bohumil, "/info")
        for path in posts:
            path = path.replace("{token}", "x" * 43).replace("{person}", str(person))
            path = path.replace("{position}", "0")
            for form, headers in (
                ({}, {}),
                ({"csrf": ""}, {}),
                ({"csrf": theirs}, {}),  # another session's token
                ({"csrf": own}, {"Origin": "https://evil.example"}),
                ({"csrf": own}, {"Sec-Fetch-Site": "cross-site"}),
            ):
                data = {**form, "name": "alena@example.com", "password": PASSWORD}
                async with alena.post(
                    path, data=data, headers=headers, allow_redirects=False
                ) as resp:
                    assert resp.status == 403, (path, form, headers)
        # Nothing of it happened: still logged in, no invitation, no new link.
        async with alena.get("/info", allow_redirects=False) as page:
            assert page.status == 200
        assert await zone.fetch("SELECT 1 FROM links WHERE purpose <> 'access'") == []


async def test_login_issues_a_new_session_id_never_the_one_brought(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        await zone.feed(contract("1001", "alena@example.com"))
        victim = await zone.client()
        await post(victim, "/access", {"contract": "1001", "email": "alena@example.com"})
        await set_password(zone, victim, "alena@example.com", PASSWORD)
        # The attacker plants a session id of their choosing in the victim's browser.
        planted = "attacker-chosen-session-id-0123456789abcdefghijklmnopq"
        victim.session.cookie_jar.update_cookies({"zone_session": planted})
        resp = await login(victim, "alena@example.com", PASSWORD)
        assert resp.status == 303
        issued = resp.cookies["zone_session"]
        assert issued.value != planted and issued["httponly"] and issued["samesite"] == "Lax"
        attacker = await zone.client()
        attacker.session.cookie_jar.update_cookies({"zone_session": planted})
        async with attacker.get("/info", allow_redirects=False) as page:
            assert (page.status, page.headers["Location"]) == (303, "/login")
        async with victim.get("/info", allow_redirects=False) as page:
            assert page.status == 200
        # Logging out ends the session on the server, not just in the browser.
        resp = await post(victim, "/logout", {}, page="/info")
        assert resp.status == 303
        stolen = await zone.client()
        stolen.session.cookie_jar.update_cookies({"zone_session": issued.value})
        async with stolen.get("/info", allow_redirects=False) as page:
            assert page.status == 303


async def test_brute_force_is_throttled_per_account_and_per_address(database_url: str) -> None:
    async with running_zone(database_url, zone_throttle_account=3, zone_throttle_address=6) as zone:
        await zone.feed(contract("1001", "alena@example.com"), contract("1002", "bob@example.com"))
        browser = await zone.client()
        await post(browser, "/access", {"contract": "1001", "email": "alena@example.com"})
        await set_password(zone, browser, "alena@example.com", PASSWORD)
        for guess in range(3):
            resp = await login(browser, "alena@example.com", f"guess number {guess}")
            assert resp.status == 401
        # Locked: even the right password is not tried, and the answer says until when.
        resp = await login(browser, "alena@example.com", PASSWORD)
        assert resp.status == 429
        # A name that does not exist locks the same way (no oracle of who has a login).
        for _ in range(3):
            assert (await login(browser, "nobody@example.com", "whatever it is")).status == 401
        assert (await login(browser, "nobody@example.com", "whatever it is")).status == 429
        # The address: 6 failures so far from 127.0.0.1, its limit, lock any account.
        resp = await login(browser, "bob@example.com", "anything at all")
        assert resp.status == 429
        # The window passes: the right password works again.
        zone.clock.at += timedelta(minutes=16)
        resp = await login(browser, "alena@example.com", PASSWORD)
        assert resp.status == 303
        audit = [r["action"] for r in await zone.fetch("SELECT action FROM audit ORDER BY id")]
        assert audit.count("login_failed") == 6 and audit.count("login_throttled") == 3


async def test_a_removed_right_or_user_counts_from_the_next_request(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        alena, _ = await _two_customers(zone)
        resp = await post(
            alena,
            "/users/invite",
            {"email": "cyril@example.com", "rights": ["invoices", "payments"]},
        )
        assert resp.status == 200 and "cyril@example.com" in await resp.text()
        cyril = await zone.client()
        await set_password(zone, cyril, "cyril@example.com", PASSWORD)
        resp = await login(cyril, "cyril@example.com", PASSWORD)
        assert resp.headers["Location"] == "/info"
        async with cyril.get("/invoices") as page:
            assert page.status == 200
        async with cyril.get("/users") as page:  # no right to manage users
            assert page.status == 403
        [(person,)] = await zone.fetch("SELECT id FROM people WHERE email = 'cyril@example.com'")

        resp = await post(alena, f"/users/{person}/rights", {"rights": ["payments"]})
        assert resp.status == 200
        async with cyril.get("/invoices") as page:
            assert page.status == 403
        async with cyril.get("/invoices/2026000001") as page:
            assert page.status == 403
        async with cyril.get("/payments") as page:
            text = await page.text()
            assert page.status == 200 and 'href="/invoices"' not in text

        resp = await post(alena, f"/users/{person}/remove", {})
        assert resp.status == 200
        for path in ("/payments", "/info"):
            async with cyril.get(path, allow_redirects=False) as page:
                assert (page.status, page.headers["Location"]) == (303, "/customers"), path
        # The owner cannot be changed from the zone, nor can a manager change themselves.
        [(owner,)] = await zone.fetch("SELECT id FROM people WHERE email = 'alena@example.com'")
        resp = await post(alena, f"/users/{owner}/rights", {"rights": []}, page="/users")
        assert resp.status == 403
        actions = [r["action"] for r in await zone.fetch("SELECT action FROM audit ORDER BY id")]
        assert {"invited", "link_used_invite", "rights_changed", "user_removed"} <= set(actions)


async def test_a_person_of_two_customers_picks_which_to_act_for(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        alena, bohumil = await _two_customers(zone)
        resp = await post(
            bohumil, "/users/invite", {"email": "alena@example.com", "rights": ["invoices"]}
        )
        assert resp.status == 200
        await zone.deliver()
        link = zone.link_to("alena@example.com")
        async with alena.get(link) as page:  # she has a password: accepting is enough
            assert 'id="accept"' in await page.text()
        resp = await post(alena, link, {}, page=link)
        assert resp.headers["Location"] == "/login?done=invite_accepted"
        async with alena.get("/customers") as page:
            text = await page.text()
        assert "act-1002" in text
        resp = await post(alena, "/customers", {"contract": "1002"})
        assert (resp.status, resp.headers["Location"]) == (303, "/info")
        async with alena.get("/invoices") as page:
            text = await page.text()
        assert "2026000002" in text and "2026000001" not in text
        async with alena.get("/payments") as page:  # not granted for 1002
            assert page.status == 403
        resp = await post(alena, "/customers", {"contract": "1001"})
        async with alena.get("/payments") as page:
            assert page.status == 200


async def test_language_is_chosen_and_remembered(database_url: str) -> None:
    async with running_zone(database_url) as zone:
        await _two_customers(zone)
        browser = await zone.client()
        async with browser.get("/login", headers={"Accept-Language": "hu-HU,hu;q=0.9"}) as page:
            assert "Bejelentkezés" in await page.text()
        resp = await post(browser, "/language", {"language": "sk", "back": "/login"})
        assert resp.status == 303
        async with browser.get("/login") as page:
            assert "Prihlásenie" in await page.text()
        await login(browser, "alena@example.com", PASSWORD)
        await post(browser, "/language", {"language": "en", "back": "/info"}, page="/info")
        # Remembered with the person: another browser, after logging in, speaks English.
        other = await zone.client()
        await login(other, "alena@example.com", PASSWORD)
        async with other.get("/invoices") as page:
            text = await page.text()
        assert "Invoices" in text and "overdue" in text and "499.00" in text


async def test_an_operator_invites_the_first_owner_audited(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``billing zone invite``: one owner by hand, then every owner contact at once; each
    in the operators' trail and the zone's audit log; a refusal is one line, no trace."""
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_ZONE_PUBLIC_URL", "http://zone.example/")
    get_settings.cache_clear()
    try:
        async with running_zone(database_url) as zone:
            await zone.feed(
                contract("1001", "alena@example.com", "Alena"),
                contract("1002", "bohumil@example.com", "Bohumil"),
            )
            await asyncio.to_thread(
                billing, ["zone", "invite", "1001", "alena@example.com", "--operator", "ops"]
            )
            assert "invited alena@example.com to contract 1001" in capsys.readouterr().out
            with pytest.raises(SystemExit) as exit_:
                await asyncio.to_thread(billing, ["zone", "invite", "7777", "x@example.com"])
            assert exit_.value.code == 66
            err = capsys.readouterr().err
            assert err == "billing: no contract 7777 known to the zone\n"
            with pytest.raises(SystemExit) as exit_:
                await asyncio.to_thread(
                    billing, ["zone", "invite", "1001", "x@example.com", "--rights", "root"]
                )
            assert exit_.value.code == 65 and "unknown right 'root'" in capsys.readouterr().err
            await asyncio.to_thread(billing, ["zone", "invite", "--owners"])
            # 1001 has a live invitation already: only 1002's owner is invited now
            assert capsys.readouterr().out == "invited bohumil@example.com to contract 1002\n"

            zone.clock.at = datetime.now(UTC)  # the command's clock is the real one
            await zone.deliver()
            alena = await zone.client()
            await set_password(zone, alena, "alena@example.com", PASSWORD)
            resp = await login(alena, "1001", PASSWORD)
            assert resp.headers["Location"] == "/info"
            async with alena.get("/users") as page:  # the owner manages users
                assert page.status == 200
            trail = await zone.fetch("SELECT operator, action, contract FROM operator_actions")
            assert [tuple(r) for r in trail] == [
                ("ops", "zone_invite", "1001"),
                (trail[1]["operator"], "zone_invite", "1002"),
            ]
            rows = await zone.fetch("SELECT actor FROM audit WHERE action = 'invited'")
            by_hand, bulk = (r["actor"] for r in rows)
            assert (by_hand, bulk) == ("operator:ops", f"operator:{trail[1]['operator']}")
    finally:
        get_settings.cache_clear()
