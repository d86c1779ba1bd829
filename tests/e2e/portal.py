"""The portal the e2e tests drive: `manage.py runportal` on a free port, as `make run` starts it, and its login."""

import sys
from pathlib import Path

from tests.services import Process

PASSWORD = "portal-e2e-password-1"  # OPSPORTAL_ADMIN_PASSWORD: runportal creates the superuser "admin" with it


def start_portal(port: int, env: dict, log: Path, *options: str) -> Process:
    portal = Process([sys.executable, "manage.py", "runportal", "--port", str(port), *options], env=env, log=log)
    try:
        portal.wait_for_http(f"http://127.0.0.1:{port}/admin/login/")
    except BaseException:
        portal.stop()  # a portal that never answered is not left running after the test
        raise
    return portal


def log_in(page, base: str) -> None:
    """Through the admin's login form, as the superuser runportal made; lands on the admin's index."""
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
