"""Every ``BILLING_*`` variable a settings class reads is documented in
docs/configuration.md, and every one documented there is read (issue 28 item 4: the
settings split into a class per service must not lose a variable, nor the manual keep one
no class reads).

The classes are found, not listed: the runtime's ``Settings`` and ``Topics`` and every
``Settings`` subclass in a ``services/<name>/settings.py``. The manual's table abbreviates
names of a row after its first (``BILLING_SMTP_HOST`` / ``_PORT``): an abbreviation counts
as the variable it completes with some prefix of the row's first name.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

from services.runtime import audit
from services.runtime.settings import ENV_PREFIX, RETIRED, Settings, Topics, env_name

ROOT = Path(__file__).resolve().parents[2]
MANUAL = ROOT / "docs" / "configuration.md"
# Documented in the settings table, read outside a settings class: by whom.
READ_ELSEWHERE = {audit.OPERATOR_ENV: "services/runtime/audit.py (who an operator command acts as)"}
_FULL = re.compile(r"`(BILLING_[A-Z0-9_]+\*?)`")
_SHORT = re.compile(r"`(_[A-Z0-9_]+)`")


def settings_classes() -> list[type[Settings]]:
    """The runtime's ``Settings`` and each service's subclass, in path order."""
    found: list[type[Settings]] = [Settings]
    for path in sorted((ROOT / "services").glob("*/settings.py")):
        if path.parent.name == "runtime":
            continue
        module = importlib.import_module(f"services.{path.parent.name}.settings")
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Settings)
            and value.__module__ == module.__name__
        ]
    return found


def read_variables() -> set[str]:
    """Every variable a settings class reads (its prefix and each field's name), but the
    retired ones it reads only to refuse (``RETIRED``: the manual says they are refused)."""
    names = {
        env_name(field)
        for cls in settings_classes()
        for field in cls.model_fields
        if field not in RETIRED
    }
    topics_prefix = Topics.model_config.get("env_prefix", "")
    names |= {f"{topics_prefix}{field}".upper() for field in Topics.model_fields}
    return names


def documented_variables(text: str) -> set[str]:
    """The variables of the manual's settings table (between "## Settings" and the
    development stack's own table), abbreviations completed as the module says."""
    table = text.split("## Settings", 1)[1].split("The development stack", 1)[0]
    known = read_variables() | set(READ_ELSEWHERE)
    names: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        full = _FULL.findall(cell)
        names |= set(full)
        first = full[0].split("_")
        for short in _SHORT.findall(cell):
            completions = {
                "_".join(first[:n]) + short
                for n in range(1, len(first))
                if "_".join(first[:n]) + short in known
            }
            # none known: the abbreviation as written with the row's prefix, so the
            # failure names it
            names |= completions or {"_".join(first[:-1]) + short}
    return names


def _expand_wildcards(documented: set[str], read: set[str]) -> set[str]:
    out = set()
    for name in documented:
        if name.endswith("*"):
            out |= {r for r in read if r.startswith(name[:-1])}
        else:
            out.add(name)
    return out


def test_every_variable_a_settings_class_reads_is_documented_and_back() -> None:
    read = read_variables()
    documented = _expand_wildcards(documented_variables(MANUAL.read_text()), read)
    assert sorted(read - documented) == [], f"read but not in {MANUAL.name}"
    assert sorted(documented - read - set(READ_ELSEWHERE)) == [], (
        f"in {MANUAL.name} but read by no settings class"
    )
    assert all(name.startswith(ENV_PREFIX) for name in read)
    for retired in map(env_name, RETIRED):
        assert f"`{retired}` is refused" in MANUAL.read_text()


def test_the_classes_found_are_the_runtime_and_each_services_own() -> None:
    classes = {cls.__name__: cls for cls in settings_classes()}
    assert {"Settings", "PaymentsSettings", "ProvisioningSettings", "NotifySettings"} <= set(
        classes
    )
    # a service's class extends the runtime's and reads the same names as before
    for cls in classes.values():
        assert issubclass(cls, BaseSettings)
        assert cls.model_config.get("env_prefix") == ENV_PREFIX
        assert set(Settings.SECRETS) <= set(cls.SECRETS)


def test_the_check_fails_on_a_variable_lost_or_only_documented() -> None:
    """The check itself can fail: a manual missing a variable, or naming one no class
    reads, is caught."""
    text = MANUAL.read_text()
    read = read_variables()
    lost = text.replace("`BILLING_PHONE_VS_PATTERN`", "`BILLING_SOMETHING_ELSE`")
    documented = _expand_wildcards(documented_variables(lost), read)
    assert read - documented == {"BILLING_PHONE_VS_PATTERN"}
    assert documented - read - set(READ_ELSEWHERE) == {"BILLING_SOMETHING_ELSE"}
    # an abbreviation that completes to nothing read is named as written
    short = text.replace("/ `_PUBLIC_URL`", "/ `_PUBLIC_PATH`")
    assert "BILLING_NOTICE_PUBLIC_PATH" in documented_variables(short)
