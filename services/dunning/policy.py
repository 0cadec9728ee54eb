"""Dunning policy: ordered steps read from a TOML file and validated.

A step fires when its condition holds for the contract's oldest unpaid invoice:
``after_days`` past its due date, or ``after_acknowledged_days`` after the customer
confirmed the on-screen notice. Errors name the file, the key and what is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PRESETS_DIR = Path(__file__).with_name("policies")


class PolicyError(ValueError):
    pass


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    action: Literal["reminder", "notice", "suspend"]
    after_days: int | None = Field(default=None, ge=0, le=365)
    after_acknowledged_days: int | None = Field(default=None, ge=0, le=365)
    channels: list[Literal["email", "sms"]] = Field(default=["email"])
    min_overdue_minor: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_condition(self) -> Step:
        if self.action == "suspend":
            if self.after_acknowledged_days is None:
                raise ValueError("a suspend step needs after_acknowledged_days")
        elif self.after_days is None:
            raise ValueError(f"a {self.action} step needs after_days")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        days = [s.after_days for s in self.steps if s.after_days is not None]
        if days != sorted(days):
            raise ValueError("steps with after_days must be in increasing order")
        suspends = [i for i, s in enumerate(self.steps) if s.action == "suspend"]
        notices = [i for i, s in enumerate(self.steps) if s.action == "notice"]
        if suspends and (not notices or notices[0] > suspends[0]):
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
        raise PolicyError(f"{path}: key {key!r}: {err['msg']}") from None


def presets() -> dict[str, Policy]:
    return {p.name: p for p in (load(f) for f in sorted(PRESETS_DIR.glob("*.toml")))}
