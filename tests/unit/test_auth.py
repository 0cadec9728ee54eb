"""Operator authentication (services/runtime/auth.py): every operator endpoint of every
worker needs a named token, reads too; state changes need JSON and an allowed Origin; a
worker refuses to start in production without tokens or a notice secret."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.provisioning.settings import ProvisioningSettings, notice_key
from services.runtime import auth
from services.runtime.clock import make_clock
from services.runtime.settings import Settings, Topics
from services.runtime.worker import Runtime, ServiceSpec, check_startup, metrics_app
from services.workers import SERVICES

ROOT = Path(__file__).resolve().parents[2]
ALICE = "a" * 40
BOB = "b" * 32


def _spec(service: str) -> ServiceSpec:
    spec: ServiceSpec = importlib.import_module(f"services.{service}.worker").SPEC
    return spec


def _settings(**values: object) -> Settings:
    base: dict[str, object] = {"environment": "production", "operator_tokens": f"alice:{ALICE}"}
    base.update(values)
    return ProvisioningSettings(**base)  # type: ignore[arg-type]


def test_tokens_are_named_long_and_compared_in_full() -> None:
    tokens = auth.OperatorTokens(
        auth.parse_tokens(f"# operators\nalice:{ALICE}\n\n bob : {BOB}\n", "file", True)
    )
    assert len(tokens) == 2
    assert tokens.who(ALICE) == "alice" and tokens.who(BOB) == "bob"
    for wrong in ("", ALICE[:-1], ALICE + "a", "Bearer " + ALICE, BOB.upper()):
        assert tokens.who(wrong) is None
    env = auth.parse_tokens(f"alice:{ALICE},bob:{BOB}", "BILLING_OPERATOR_TOKENS", False)
    assert set(env) == {"alice", "bob"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice", "line 1: expected name:token"),
        (f"alice:{'x' * 31}", "line 1: the token of 'alice' must be at least 32 characters"),
        (f"alice:{ALICE}\nalice:{BOB}", "line 2: operator 'alice' is named twice"),
        (f"alice:{ALICE}\nbob:{ALICE}", "line 2: the token of 'bob' is another operator's too"),
        (f"al ice:{ALICE}", "line 1: operator name 'al ice'"),
    ],
)
def test_bad_token_lines_are_refused_naming_the_line_not_the_token(text: str, message: str) -> None:
    with pytest.raises(auth.ConfigError) as refused:
        auth.parse_tokens(text, "tokens.txt", True)
    assert f"tokens.txt: {message}" in str(refused.value)
    assert ALICE not in str(refused.value) and BOB not in str(refused.value)


def test_tokens_are_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "operators"
    path.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    tokens = auth.operator_tokens(Settings(operator_tokens_file=path))
    assert tokens.who(BOB) == "bob"
    with pytest.raises(ValueError, match="both set"):
        Settings(operator_tokens_file=path, operator_tokens=f"alice:{ALICE}")


def test_the_retired_single_token_setting_is_refused_naming_the_new_ones() -> None:
    with pytest.raises(ValueError) as refused:
        Settings(operator_token="x" * 40)
    line = auth.error_line(refused.value)
    assert "BILLING_OPERATOR_TOKEN is no longer read" in line
    assert "BILLING_OPERATOR_TOKENS_FILE" in line and "\n" not in line


def test_production_refuses_to_start_without_operator_tokens_or_notice_secret(
    tmp_path: Path,
) -> None:
    for service in ("payments", "provisioning"):
        with pytest.raises(auth.ConfigError, match="no operator tokens"):
            check_startup(_spec(service), ProvisioningSettings(environment="production"))
    secret = tmp_path / "notice-secret"
    with pytest.raises(auth.ConfigError, match=r"no notice secret.*BILLING_NOTICE_SECRET_FILE"):
        check_startup(_spec("provisioning"), _settings())
    for bad, why in (("change-me-in-production", "published default"), ("x" * 31, "at least")):
        secret.write_text(bad)
        with pytest.raises(auth.ConfigError, match=why):
            check_startup(_spec("provisioning"), _settings(notice_secret_file=secret))
    secret.write_text("s" * 32 + "\n")
    assert check_startup(_spec("provisioning"), _settings(notice_secret_file=secret))
    # development: no tokens (every operator request refused), a development notice key
    assert check_startup(_spec("provisioning"), ProvisioningSettings(environment="development"))
    assert notice_key(ProvisioningSettings(environment="development"))


def test_a_worker_process_refuses_to_start_in_one_json_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env["BILLING_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"  # never reached
    done = subprocess.run(
        [sys.executable, "-m", "services.payments.worker"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 78
    lines = [json.loads(line) for line in done.stdout.splitlines() + done.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["worker cannot start"]
    assert "BILLING_OPERATOR_TOKENS_FILE" in lines[0]["error"]
    env["BILLING_OPERATOR_TOKEN"] = ALICE  # the retired setting
    done = subprocess.run(
        [sys.executable, "-m", "services.payments.worker"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 78 and "Traceback" not in done.stdout + done.stderr
    assert "BILLING_OPERATOR_TOKEN is no longer read" in json.loads(done.stdout)["error"]


def _path(canonical: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", canonical)


def test_every_operator_endpoint_of_every_worker_needs_a_token() -> None:
    """Every route any worker serves on its metrics port, found from the app, not listed
    here: a new endpoint is guarded without anyone remembering to."""
    settings = _settings(
        environment="development", operator_allowed_origins=["https://ops.example"]
    )

    async def go() -> None:
        checked = []
        for service in SERVICES:
            spec = _spec(service)
            own = settings.for_service(spec.settings)
            rt = Runtime(service, own, Topics(), make_clock(settings))
            guard = check_startup(spec, own)  # each worker checks its own settings
            app = metrics_app(rt, spec, guard)
            routes = [
                (r.method, _path(r.resource.canonical))
                for r in app.router.routes()
                if r.resource is not None and r.method != "HEAD"
            ]
            async with TestClient(TestServer(app)) as client:
                for method, path in routes:
                    async with client.request(method, path) as resp:
                        if path in auth.OPEN:
                            assert resp.status == 200, (service, path)
                            continue
                        assert resp.status in (401, 415), (service, method, path)
                        checked.append((service, method, path))
                    # a wrong token, and the right one in the wrong scheme
                    for header in (f"Bearer {BOB}", f"Basic {ALICE}", ALICE):
                        async with client.request(
                            method, path, headers={"Authorization": header},
                            json={} if method == "POST" else None,
                        ) as resp:  # fmt: skip
                            assert resp.status == 401, (service, path, header)
        assert {("payments", "GET", "/unmatched"), ("payments", "POST", "/unmatched/assign"),
                ("payments", "GET", "/movements/x/x"), ("provisioning", "GET", "/access"),
                ("provisioning", "GET", "/drift")} <= set(checked)  # fmt: skip

    asyncio.run(go())


def test_state_changes_need_json_and_an_allowed_origin() -> None:
    tokens = auth.OperatorTokens({"alice": ALICE})
    guard = auth.OperatorGuard(tokens, frozenset({"https://ops.example"}))
    from aiohttp import web

    async def assign(request: web.Request) -> web.Response:
        return web.json_response({"operator": request[auth.OPERATOR]})

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_post("/unmatched/assign", assign)
    app.router.add_get("/unmatched", assign)
    bearer = {"Authorization": f"Bearer {ALICE}"}

    async def go() -> None:
        async with TestClient(TestServer(app)) as client:

            async def post(data: str, **headers: str) -> int:
                async with client.post("/unmatched/assign", data=data,
                                       headers={**bearer, **headers}) as resp:  # fmt: skip
                    return resp.status

            # the cross-site form post of the issue: text/plain, another site's Origin
            assert await post("{}", **{"Content-Type": "text/plain"}) == 415
            assert await post("{}", **{"Content-Type": "application/x-www-form-urlencoded"}) == 415
            assert await post("{}", **{"Content-Type": "application/json",
                                       "Origin": "https://evil.example"}) == 403  # fmt: skip
            assert await post("{}", **{"Content-Type": "text/plain",
                                       "Origin": "https://evil.example"}) == 403  # fmt: skip
            async with client.post("/unmatched/assign", data="{}",
                                   headers={"Content-Type": "application/json",
                                            "Origin": "https://evil.example"}) as resp:  # fmt: skip
                assert resp.status == 403  # no token either: refused all the same
            assert await post("{}", **{"Content-Type": "application/json"}) == 200
            assert await post("{}", **{"Content-Type": "application/json; charset=utf-8",
                                       "Origin": "https://ops.example"}) == 200  # fmt: skip
            async with client.get("/unmatched", headers=bearer) as resp:
                assert (await resp.json())["operator"] == "alice"  # the audit knows who
            async with client.get("/unmatched", headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 401

    asyncio.run(go())


def test_a_test_clock_is_refused_in_production_by_every_worker() -> None:
    """A test clock moves due dates, reminders and suspensions for every customer: only in
    development (the dev stack, the tests), never in production, whichever worker."""
    for service in ("invoicing", "payments", "dunning", "provisioning", "notify"):
        with pytest.raises(auth.ConfigError, match="BILLING_TEST_CLOCK=true"):
            check_startup(_spec(service), _settings(test_clock=True))
        check_startup(_spec(service), _settings(environment="development", test_clock=True))
