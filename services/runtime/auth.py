"""Who may use a worker's HTTP endpoints, and the secrets a worker must have to start.

Operators. Every route on a worker's HTTP port needs ``Authorization: Bearer <token>``,
reads included, except ``/metrics``, ``/healthz`` and ``/readyz`` (``OPEN``). Tokens are
named, so an action records who took it: ``BILLING_OPERATOR_TOKENS_FILE`` (a line
``name:token`` each; blank lines and ``#`` comments ignored) or ``BILLING_OPERATOR_TOKENS``
(``name:token`` entries separated by commas). A token has at least 32 characters. A
presented token is compared with every configured one in constant time (their SHA-256
digests, so neither the position of the first differing character nor a token's length
shows in the timing).

A state-changing request (anything but GET, HEAD, OPTIONS) must also say
``Content-Type: application/json`` (an HTML form cannot send that cross-site without a
CORS preflight, which these endpoints never grant) and, when it carries an ``Origin``
header, come from an origin in ``BILLING_OPERATOR_ALLOWED_ORIGINS`` (scripts send none).

Start-up. In production (``BILLING_ENVIRONMENT=production``, the default) a worker that
serves operator endpoints refuses to start without operator tokens (a service's own
start-up checks, such as provisioning's notice secret, live with the service: its
``ServiceSpec.startup_checks``); the development stack sets ``development``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from services.runtime.errors import BadConfig
from services.runtime.settings import Settings, env_name

MIN_TOKEN_LENGTH = 32
OPEN = frozenset({"/metrics", "/healthz", "/readyz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATOR = web.RequestKey("operator", str)  # the name of the authenticated operator
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
TOKENS_SETTINGS = (
    f"{env_name('operator_tokens_file')} (lines name:token) or {env_name('operator_tokens')}"
)


class ConfigError(BadConfig):
    """A setting that keeps a worker from starting; the message is one line naming it."""


class OperatorTokens:
    """Named operator tokens; ``who`` answers which operator presented a token."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._digests = [(name, _digest(token)) for name, token in tokens.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def who(self, presented: str) -> str | None:
        """The name of the operator whose token this is, or None. Every token is compared
        (no early exit), so the time taken does not say how many matched or where."""
        digest = _digest(presented)
        found = None
        for name, expected in self._digests:
            if hmac.compare_digest(digest, expected):
                found = name
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, source: str, by_line: bool) -> dict[str, str]:
    """``name:token`` entries, a line each (a file) or comma-separated (the environment).
    Errors name the source and the line or entry, never the token."""
    entries = text.splitlines() if by_line else text.split(",")
    what = "line" if by_line else "entry"
    tokens: dict[str, str] = {}
    seen: set[str] = set()
    for n, raw in enumerate(entries, 1):
        entry = raw.strip()
        if not entry or (by_line and entry.startswith("#")):
            continue
        where = f"{source}: {what} {n}"
        name, sep, token = entry.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise ConfigError(f"{where}: expected name:token")
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{where}: operator name {name!r}: letters, digits and . _ @ - (at most 64)"
            )
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise ConfigError(
                f"{where}: the token of {name!r} must be at least {MIN_TOKEN_LENGTH} characters"
                " without spaces (e.g. `openssl rand -hex 32`)"
            )
        if name in tokens:
            raise ConfigError(f"{where}: operator {name!r} is named twice")
        if token in seen:
            raise ConfigError(f"{where}: the token of {name!r} is another operator's too")
        seen.add(token)
        tokens[name] = token
    return tokens


def operator_tokens(settings: Settings) -> OperatorTokens:
    """The configured operator tokens (none: an empty set, which lets nobody in)."""
    if settings.operator_tokens_file is not None:
        source = f"{env_name('operator_tokens_file')}={settings.operator_tokens_file}"
        by_line = True
    else:
        source, by_line = env_name("operator_tokens"), False
    try:
        text = settings.secret("operator_tokens")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return OperatorTokens(parse_tokens(text, source, by_line) if text else {})


def require_operator_tokens(settings: Settings) -> OperatorTokens:
    tokens = operator_tokens(settings)
    if not tokens and settings.environment == "production":
        raise ConfigError(
            f"no operator tokens: {env_name('environment')}=production needs {TOKENS_SETTINGS},"
            f" each token at least {MIN_TOKEN_LENGTH} characters"
        )
    return tokens


def refuse_test_clock_in_production(settings: Settings) -> None:
    """A test clock (``billing clock set|advance`` moves every worker's time, and with it
    due dates, reminders and suspensions) is for development and tests only."""
    if settings.test_clock and settings.environment == "production":
        raise ConfigError(
            f"{env_name('test_clock')}=true lets anyone who can write the database move time"
            f" for every customer: refused with {env_name('environment')}=production"
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class OperatorGuard:
    """The aiohttp middleware of a worker's HTTP port (``OperatorGuard(...).middleware``)."""

    tokens: OperatorTokens
    allowed_origins: frozenset[str] = frozenset()
    open_paths: frozenset[str] = OPEN

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        if route is not None and route.canonical in self.open_paths:
            return await handler(request)
        if request.method not in SAFE_METHODS:
            refused = self.refuse_state_change(request)
            if refused is not None:
                return refused
        kind, _, presented = request.headers.get("Authorization", "").partition(" ")
        name = self.tokens.who(presented.strip()) if kind.lower() == "bearer" else None
        if name is None:
            return web.json_response(
                {"error": "an operator token is required: Authorization: Bearer <token>"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="billing"'},
            )
        request[OPERATOR] = name
        return await handler(request)

    def refuse_state_change(self, request: web.Request) -> web.Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            return web.json_response(
                {"error": f"Origin {origin!r} may not change anything here"}, status=403
            )
        if request.content_type != "application/json":
            return web.json_response(
                {"error": "Content-Type: expected application/json"}, status=415
            )
        return None


def guard(settings: Settings) -> OperatorGuard:
    """The guard of a worker's operator endpoints (refuses to be made in production
    without tokens)."""
    return OperatorGuard(
        require_operator_tokens(settings),
        frozenset(o.rstrip("/") for o in settings.operator_allowed_origins),
    )


def error_line(exc: Exception) -> str:
    """One line for a start-up refusal: a settings error's own message without pydantic's
    framing (which spans lines and links to its documentation)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            message = str(first.get("ctx", {}).get("error") or first["msg"])
        except (IndexError, KeyError, TypeError):
            message = str(exc)
    else:
        message = str(exc)
    return " ".join(message.split())


MIN_SECRET_LENGTH = 32


def signing_key(
    settings: Settings,
    setting: str,
    development_key: bytes,
    published: frozenset[str] = frozenset(),
) -> bytes:
    """The key a web page signs its form tokens with: the secret ``setting`` (from its
    ``_FILE`` or the environment), at least 32 characters and none of the ``published``
    ones. Without one, development gets ``development_key`` and production refuses to
    start, naming the variable."""
    try:
        secret = settings.secret(setting)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    name = env_name(f"{setting}_file")
    if secret is None:
        if settings.environment == "development":
            return development_key
        raise ConfigError(
            f"no {setting.removesuffix('_secret')} secret: {env_name('environment')}=production"
            f" needs {name} (at least {MIN_SECRET_LENGTH} random characters,"
            " e.g. `openssl rand -hex 32`)"
        )
    if secret in published:
        raise ConfigError(f"{name}: the published default secret; set a random one of your own")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{name}: the secret must be at least {MIN_SECRET_LENGTH} characters")
    return secret.encode()
