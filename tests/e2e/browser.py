"""The browser the e2e tests drive: Debian's Chromium through Playwright (never `playwright install`)."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def browser_or_skip() -> None:
    """Without Chromium or Playwright the test is skipped, except in CI, where that is a broken machine."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "Playwright for Python (pip install -r requirements-dev.txt)"
    else:
        missing = "" if CHROMIUM.exists() else f"Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the browser test cannot run: no {missing}")
    if missing:
        pytest.skip(f"needs {missing}")


@contextlib.contextmanager
def chromium(*args: str) -> Iterator[Any]:
    """A headless Chromium with these extra command-line switches, closed afterwards (call browser_or_skip() first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", *args],
        )
        try:
            yield browser
        finally:
            browser.close()
