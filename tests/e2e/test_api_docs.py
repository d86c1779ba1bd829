"""The API's docs page in a real headless Chromium against `manage.py runportal`: offline, and complete.

The browser reaches the portal by a name of its own (portal.test, mapped to
loopback), as users reach a deployed portal: Swagger UI treats "localhost" and
"127.0.0.1" specially (it never calls its online validator for them), and the
test must see what a real host name gets. Any request to another host is
refused and fails the test, so the page must work with no CDN and no network.
A staff member signs in, opens /api/v1/docs/ and finds every operation of the
live schema listed.

Embedded mode (SQLite, in-process everything) always; with DATABASE_URL and
REDIS_URL set, also the production mode (a scratch PostgreSQL database, Redis).
"""

import signal
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.conftest import REDIS_URL
from tests.core.test_runportal import scratch_database  # noqa: F401 - a fixture, for the production mode
from tests.e2e.browser import browser_or_skip, chromium
from tests.e2e.portal import PASSWORD, log_in, start_portal
from tests.services import free_port, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOST = "portal.test"


@pytest.fixture(params=["embedded", pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.redis])])
def portal(request, var_dir, tmp_path) -> Iterator[str]:
    """A fresh runportal (no worker) answering to HOST; yields its base URL as the browser sees it."""
    env = {"OPSPORTAL_VAR_DIR": var_dir, "OPSPORTAL_ADMIN_PASSWORD": PASSWORD, "ALLOWED_HOSTS": f"{HOST},127.0.0.1"}
    if request.param == "production":
        env |= {"DATABASE_URL": request.getfixturevalue("scratch_database"), "REDIS_URL": REDIS_URL,
                "SECRET_KEY": "e2e-api-docs-" + "s" * 51}  # fmt: skip
    port = free_port()
    process = start_portal(port, subprocess_env(**env), tmp_path / "runportal.log", "--no-worker")
    try:
        yield f"http://{HOST}:{port}"
    finally:
        process.stop(signal.SIGTERM)


@pytest.fixture
def tab(portal) -> Iterator:
    """A tab whose requests may reach the portal only: the others are refused and listed in tab.elsewhere."""
    browser_or_skip()
    with chromium(f"--host-resolver-rules=MAP {HOST} 127.0.0.1") as browser:
        tab = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        tab.elsewhere, tab.failed, tab.errors = [], [], []
        portal_host = urlsplit(portal).netloc

        def only_the_portal(route) -> None:
            if urlsplit(route.request.url).netloc == portal_host:
                route.continue_()
            else:
                tab.elsewhere.append(route.request.url)
                route.abort()

        tab.route("**/*", only_the_portal)
        tab.on("response", lambda response: response.status >= 400 and tab.failed.append(response.url))
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        yield tab


def test_staff_see_every_operation_of_the_schema_on_the_docs_page_with_no_request_elsewhere(tab, portal):
    log_in(tab, portal)

    tab.goto(f"{portal}/api/v1/docs/")

    tab.wait_for_load_state("networkidle")
    assert tab.elsewhere == [], "the docs page asked another host"
    schema = tab.evaluate("fetch('/api/v1/schema/').then(answer => answer.json())")  # by the browser: portal.test
    expected = sorted((method.upper(), path) for path, methods in schema["paths"].items() for method in methods)
    expect(tab.locator(".opblock")).to_have_count(len(expected))
    listed = tab.locator(".opblock").evaluate_all(
        """blocks => blocks.map(block => [
            block.querySelector(".opblock-summary-method").textContent.trim(),
            block.querySelector(".opblock-summary-path").dataset.path,
        ])"""
    )
    assert sorted(map(tuple, listed)) == expected
    expect(tab.locator(".info .title")).to_contain_text(schema["info"]["title"])
    assert tab.failed == [] and tab.errors == []
    assert tab.elsewhere == []
