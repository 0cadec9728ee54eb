from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devstack.demo import isolated_stack
from services.devstack.stack import Stack
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The whole system: a fresh broker, a fresh database, an SMTP sink, the workers."""
    run_dir = tmp_path / "run"
    s = isolated_stack(run_dir, database_url)
    try:
        s.start_infrastructure()
        s.start_workers()
        yield s
    finally:
        s.stop()
        keep = ROOT / "artifacts" / "e2e-logs"
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir / "logs", keep / tmp_path.name, dirs_exist_ok=True)


def browser_missing() -> str | None:
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make test installs it with apt-get when root)"
    return None


@pytest.fixture
def driver(tmp_path: Path):  # type: ignore[no-untyped-def]
    why = browser_missing()
    if why:
        unavailable(why, "the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--window-size=900,1300",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):  # fmt: skip
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=opts)
    yield d
    d.quit()
