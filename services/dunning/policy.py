"""Dunning policy: ordered steps read from a TOML file and validated.

A step fires when all its conditions hold for the contract's oldest unpaid invoice:
- when: ``after_days`` past its due date, or ``after_working_days`` (weekends and the
  contract country's public holidays not counted), or ``after_month_end`` (from the first
  day of the month after the one it fell due in), or, for suspension,
  ``after_acknowledged_days`` after the customer confirmed the notice (with
  ``deadline_days`` after the notice as a hard deadline if they never do);
- how much: ``min_overdue`` per currency (minor units), ``min_invoices`` unpaid invoices.

Actions: ``reminder`` (on ``channels``), ``notice``, ``suspend``, ``restrict``, and ``fee``
(``fee`` per currency, charged once per invoice onto the next invoice).

``[guards]`` hold back the actions in ``guards.actions`` (default: suspend and restrict):
not on weekends, public holidays, outside ``staffed_hours`` (local time), nor while a
payment of the contract is received but unmatched (for ``unmatched_hold_days``).
``[promise]`` lets the customer postpone the suspension from the notice page.

Errors name the file, the key and what is wrong.
"""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PRESETS_DIR = Path(__file__).with_name("policies")
Action = Literal["reminder", "notice", "suspend", "restrict", "fee"]
HELD_BY_DEFAULT: tuple[Action, ...] = ("suspend", "restrict")


class PolicyError(ValueError):
    pass


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    action: Action
    after_days: int | None = Field(default=None, ge=0, le=365)
    after_working_days: int | None = Field(default=None, ge=0, le=250)
    after_month_end: bool = False
    after_acknowledged_days: int | None = Field(default=None, ge=0, le=365)
    deadline_days: int | None = Field(default=None, ge=1, le=365)
    channels: list[Literal["email", "sms"]] = Field(default=["email"], min_length=1)
    min_overdue: dict[str, int] = Field(default_factory=dict)
    min_invoices: int = Field(default=1, ge=1, le=120)
    fee: dict[str, int] = Field(default_factory=dict)

    @field_validator("min_overdue", "fee")
    @classmethod
    def _currencies(cls, value: dict[str, int]) -> dict[str, int]:
        for currency, amount in value.items():
            if len(currency) != 3 or not currency.isupper():
                raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
            if amount < 0:
                raise ValueError(f"{currency}: amount must not be negative")
        return value

    @model_validator(mode="after")
    def _one_condition(self) -> Step:
        when = [
            self.after_days is not None,
            self.after_working_days is not None,
            self.after_month_end,
            self.after_acknowledged_days is not None,
        ]
        if sum(when) != 1:
            raise ValueError(
                "exactly one of after_days, after_working_days, after_month_end and"
                " after_acknowledged_days"
            )
        if self.after_acknowledged_days is not None and self.action != "suspend":
            raise ValueError("after_acknowledged_days only suits a suspend step")
        if self.deadline_days is not None and self.after_acknowledged_days is None:
            raise ValueError("deadline_days only goes with after_acknowledged_days")
        if self.action == "fee" and not self.fee:
            raise ValueError("a fee step needs fee, e.g. fee = { CZK = 5000 }")
        return self


class Guards(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: list[Action] = Field(default_factory=lambda: list(HELD_BY_DEFAULT))
    weekends: bool = True  # hold on Saturdays and Sundays
    holidays: bool = True  # hold on the country's public holidays
    staffed_hours: str | None = "08:00-16:00"  # local time; "" in the file: any hour
    staffed_hours_by_country: dict[str, str] = Field(default_factory=dict)  # {"SK": "07:00-15:00"}
    unmatched_hold_days: int = Field(default=14, ge=0, le=90)

    @field_validator("staffed_hours_by_country")
    @classmethod
    def _hours_by_country(cls, value: dict[str, str]) -> dict[str, str]:
        for country, hours in value.items():
            if country not in ("CZ", "SK", "HU"):
                raise ValueError(f"{country!r}: expected CZ, SK or HU")
            if hours:
                staffed_window(hours)
        return value

    def hours_for(self, country: str) -> str | None:
        if country in self.staffed_hours_by_country:
            return self.staffed_hours_by_country[country] or None
        return self.staffed_hours

    @field_validator("staffed_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if not value:
            return None  # "" in the file: any hour
        staffed_window(value)
        return value


def staffed_window(text: str) -> tuple[time, time]:
    try:
        a, b = (time.fromisoformat(p.strip()) for p in text.split("-"))
    except ValueError:
        raise ValueError(f"{text!r}: expected HH:MM-HH:MM") from None
    if not a < b:
        raise ValueError(f"{text!r}: the window must start before it ends")
    return a, b


class Promise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_days: int = Field(default=0, ge=0, le=60)  # 0: no promise button
    once_per_days: int = Field(default=180, ge=1, le=3650)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    guards: Guards = Field(default_factory=Guards)
    promise: Promise = Field(default_factory=Promise)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        days = [s.after_days for s in self.steps if s.after_days is not None]
        if days != sorted(days):
            raise ValueError("steps with after_days must be in increasing order")
        actions = [s.action for s in self.steps]
        if "suspend" in actions and (
            "notice" not in actions or actions.index("notice") > actions.index("suspend")
        ):
            raise ValueError("a suspend step needs a notice step before it")
        return self


def load(path: Path) -> Policy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: invalid TOML: {exc}") from None
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise PolicyError(f"{path}: key {key!r}: {msg}") from None


def presets() -> dict[str, Policy]:
    return {p.name: p for p in (load(f) for f in sorted(PRESETS_DIR.glob("*.toml")))}


def load_all(extra_dir: str | None) -> dict[str, Policy]:
    """The presets, plus (overriding by name) every ``*.toml`` in the operator's folder."""
    policies = presets()
    if extra_dir:
        folder = Path(extra_dir)
        if not folder.is_dir():
            raise PolicyError(f"{folder}: policy folder does not exist")
        for path in sorted(folder.glob("*.toml")):
            p = load(path)
            policies[p.name] = p
    return policies
