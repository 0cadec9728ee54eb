"""deploy/billing.env.example and deploy/gear.env.example name every ``BILLING_*`` variable a
settings class reads, and only those (issue 32 item 4); a secret is never written in them,
only the file that holds it; and what they set is accepted by every service's settings
class, as systemd's ``EnvironmentFile=`` would pass it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.gear.settings import GearSettings
from services.runtime.settings import Settings, env_name
from tests.unit.test_settings_documented import read_variables, settings_classes

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ROOT / "deploy" / "billing.env.example"
GEAR = ROOT / "deploy" / "gear.env.example"
_LINE = re.compile(r"^(#?)(BILLING_[A-Z0-9_]+)=(.*)$")


def named(path: Path) -> dict[str, str | None]:
    """Each variable the file names: its value where the line is set, None where it is
    commented out (a default, or a secret's direct form)."""
    found: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            assert m.group(2) not in found, f"{path.name}: {m.group(2)} twice"
            found[m.group(2)] = None if m.group(1) else unquote(m.group(3))
    return found


def unquote(value: str) -> str:
    """As systemd reads an EnvironmentFile= value: one in single quotes is kept literally."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    assert "'" not in value and '"' not in value[:1], f"unquoted {value!r}"
    return value


def secret_names() -> set[str]:
    return {name for cls in settings_classes() for name in cls.SECRETS}


def test_the_examples_name_every_variable_read_and_nothing_else() -> None:
    workers, gear = named(WORKERS), named(GEAR)
    read = read_variables()
    assert sorted(read - set(workers) - set(gear)) == [], "read, but in neither example"
    assert sorted(set(workers) - read) == [], f"in {WORKERS.name}, read by no settings class"
    gear_reads = {env_name(f) for f in GearSettings.model_fields}
    assert sorted(set(gear) - gear_reads) == [], f"in {GEAR.name}, not read by the gear"


def test_no_secret_is_written_only_the_file_that_holds_it() -> None:
    for path in (WORKERS, GEAR):
        values = named(path)
        for name in secret_names():
            if env_name(name) in values:
                assert values[env_name(name)] is None, f"{path.name}: {env_name(name)} is set"
                file_var = env_name(f"{name}_file")
                assert file_var in values, f"{path.name}: {env_name(name)} without its _FILE"
                if values[file_var] is not None:
                    assert values[file_var].startswith("/etc/billing/"), file_var


@pytest.mark.parametrize("example", [WORKERS, GEAR], ids=lambda p: p.name)
def test_what_the_examples_set_is_accepted_by_every_settings_class(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each set value, the secret files made where they point (with tokens of the right
    form), satisfies every settings class that reads it: the example is a configuration
    that starts, not a list of names."""
    for name in [n for n in __import__("os").environ if n.startswith("BILLING_")]:
        monkeypatch.delenv(name)
    for name, value in named(example).items():
        if value is None:
            continue
        if value.startswith("/etc/billing/"):
            path = tmp_path / Path(value).name
            path.write_text(("alice:" if "operator" in name else "") + "ab" * 32 + "\n")
            value = str(path)
        monkeypatch.setenv(name, value)
    classes = [GearSettings] if example == GEAR else [
        c for c in settings_classes() if c is not GearSettings
    ]  # fmt: skip
    for cls in classes:
        settings = cls()
        assert isinstance(settings, Settings)
        for secret in cls.SECRETS:
            if getattr(settings, f"{secret}_file") is not None:
                assert settings.secret(secret), f"{cls.__name__}: {secret}"


CREDENTIALS = ROOT / "deploy" / "systemd" / "credentials"


def _settings_of(unit: str) -> type[Settings]:
    """The settings class the unit's process reads: a worker's, the Fio fetch's, the gear's."""
    import importlib

    if unit == "billing-gear.service":
        return GearSettings
    if unit == "billing-fio.service":
        return importlib.import_module("services.bank_import.settings").BankImportSettings  # type: ignore[no-any-return]
    instance = unit.removeprefix("billing@").removesuffix(".service")
    if not instance:  # the template: every worker gets these
        return Settings
    return importlib.import_module(f"services.{instance}.worker").SPEC.settings  # type: ignore[no-any-return]


@pytest.mark.parametrize("dropin", sorted(CREDENTIALS.glob("*.conf")), ids=lambda p: p.name)
def test_credential_dropins_give_each_secret_its_file(dropin: Path) -> None:
    """Each LoadCredential= is paired with the ``BILLING_<SECRET>_FILE`` pointing into the
    unit's credentials directory (%d), for a secret that unit's process reads."""
    loaded: dict[str, str] = {}
    pointed: dict[str, str] = {}
    for line in dropin.read_text().splitlines():
        if line.startswith("LoadCredential="):
            name, _, source = line.removeprefix("LoadCredential=").partition(":")
            assert source.startswith("/etc/billing/"), line
            loaded[name] = source
        elif line.startswith("Environment="):
            var, _, value = line.removeprefix("Environment=").partition("=")
            assert value.startswith("%d/"), line
            pointed[value.removeprefix("%d/")] = var
    assert loaded and set(loaded) == set(pointed), dropin.name
    cls = _settings_of(dropin.name.removesuffix(".conf"))
    files = {env_name(f"{s}_file") for s in cls.SECRETS}
    assert set(pointed.values()) <= files, f"{dropin.name}: not secrets {cls.__name__} reads"
