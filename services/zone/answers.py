"""What every page module of the zone answers with: the wording of its four languages,
the refusal that becomes a page in the person's language (403, 404, 429 ...), and the
reading of a number from a URL (anything else answers as one that does not exist)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).with_name("templates")
WORDING: dict[str, dict[str, str]] = tomllib.loads(
    (TEMPLATES / "wording.toml").read_text(encoding="utf-8")
)


class Refused(Exception):
    """A request answered with a page: 403, 404, 429 ... in the person's language."""

    def __init__(self, status: int, key: str, **fmt: Any) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.fmt = fmt


def number(text: str) -> int | None:
    """An id from a URL: digits only, and not absurdly long; else None (a 404)."""
    return int(text) if text.isdigit() and len(text) <= 18 else None
