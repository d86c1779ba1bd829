"""The browser of the e2e tests: one headless Chromium per test; `page` is a tab of it (more: page.context)."""

from collections.abc import Iterator

import pytest

from tests.e2e.browser import browser_or_skip, chromium


@pytest.fixture
def page() -> Iterator:
    browser_or_skip()
    with chromium() as browser:
        yield browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
