"""Secrets never on a command line: read from the environment or, preferred, a file
(``BILLING_<NAME>_FILE``), all through ``Settings.secret``."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.cli import build_parser
from services.runtime.settings import Settings
from tests.unit.test_settings_documented import settings_classes

ROOT = Path(__file__).resolve().parents[2]
SECRET_WORDS = re.compile(r"token|password|passwd|secret|api[-_]?key|credential", re.I)


def _options(parser: argparse.ArgumentParser, prefix: str = "billing") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{prefix} {name}")
        else:
            found += [f"{prefix} {option}" for option in action.option_strings]
    return found


def test_no_command_takes_a_secret_as_an_option() -> None:
    options = _options(build_parser())
    assert "billing fio fetch --days" in options  # the walk reaches the subcommands
    assert [o for o in options if SECRET_WORDS.search(o)] == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fio", "fetch", "--token", "x"])


def test_no_unit_file_passes_a_secret() -> None:
    for unit in (ROOT / "deploy" / "systemd").glob("*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart", "Environment=")):
                assert not SECRET_WORDS.search(line), f"{unit.name}: {line}"


# Each secret with the class that declares it (the runtime's, or a service's own).
SECRETS = [
    (cls, name)
    for cls in settings_classes()
    for name in cls.SECRETS
    if cls is Settings or name not in Settings.SECRETS
]


def test_the_secrets_are_those_there_were_before_the_split() -> None:
    # the zone (issue 30) adds its form secret and reads the same relay's password as notify
    assert sorted(name for _, name in SECRETS) == sorted(
        ("kafka_sasl_password", "operator_tokens", "notice_secret", "smtp_password",
         "sms_gateway_password", "fio_token", "gear_snapshot_token", "zone_secret",
         "smtp_password")
    )  # fmt: skip


@pytest.mark.parametrize(("cls", "name"), SECRETS)
def test_every_secret_is_read_from_its_file_or_the_environment(
    cls: type[Settings], name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text("from-the-file\n")
    # the Kafka password is only accepted where the protocol uses it
    kafka = {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "billing"}
    extra = kafka if name == "kafka_sasl_password" else {}
    assert cls(**extra, **{f"{name}_file": path}).secret(name) == "from-the-file"  # type: ignore[arg-type]
    settings = cls(**extra, **{name: "from-the-env"})  # type: ignore[arg-type]
    assert settings.secret(name) == "from-the-env"
    assert "from-the-env" not in repr(settings)  # SecretStr: never in a log line or repr
    assert cls().secret(name) is None
    if name != "kafka_sasl_password":  # its own check names the protocol (test_kafka_settings)
        with pytest.raises(ValueError, match="both set"):
            cls(**{name: "x", f"{name}_file": path})  # type: ignore[arg-type]


def test_the_fio_token_comes_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """billing fio fetch takes the token from BILLING_FIO_TOKEN_FILE (no database needed to
    see it is read: the client made with it is the first thing that would use it)."""
    from services.bank_import import cli, fio_api

    path = tmp_path / "fio-token"
    path.write_text("fio-secret-token\n")
    monkeypatch.setenv("BILLING_FIO_TOKEN_FILE", str(path))
    seen: list[str] = []

    class Stop(Exception):
        pass

    def client(token: str, *_: object) -> None:
        seen.append(token)
        raise Stop

    async def nothing(*_: object, **__: object) -> None:
        return None

    class Pool:
        async def close(self) -> None:
            return None

        def acquire(self) -> Pool:
            return self

        async def __aenter__(self) -> None:
            return None

        async def __aexit__(self, *_: object) -> None:
            return None

    async def now(*_: object) -> datetime:
        return datetime(2026, 1, 2, tzinfo=UTC)

    async def pool(*_: object, **__: object) -> Pool:
        return Pool()

    from services.runtime import settings as settings_module

    settings_module.get_settings.cache_clear()
    monkeypatch.setattr(cli.db, "migrate", nothing)
    monkeypatch.setattr(cli.db, "create_pool", pool)
    monkeypatch.setattr(cli.importer, "now_for", now)
    monkeypatch.setattr(fio_api, "FioClient", client)
    args = build_parser().parse_args(["fio", "fetch", "--from", "2026-01-01", "--to", "2026-01-02"])
    try:
        with pytest.raises(Stop):
            args.fn(args)
    finally:
        settings_module.get_settings.cache_clear()
    assert seen == ["fio-secret-token"]
