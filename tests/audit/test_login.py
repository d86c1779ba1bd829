import threading
import uuid
from http import HTTPStatus

import pytest
from django.contrib.auth.models import User
from django.db import connection

from apps.audit.backends import ThrottledModelBackend
from apps.core import context

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def fresh_counters(settings):
    """A cache namespace of the test's own: counters start at zero, whoever else shares the cache."""
    settings.CACHES = {name: {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
                       for name, config in settings.CACHES.items()}  # fmt: skip


def attempt(client, username: str, password: str, ip: str = "192.0.2.50"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


def test_a_login_and_a_logout_are_recorded_with_the_client(client, staff_user, sealed_events):
    assert attempt(client, "bob", "bob-password-12").status_code == HTTPStatus.FOUND
    client.post("/admin/logout/", REMOTE_ADDR="192.0.2.50")

    events = [e for e in sealed_events() if e.action.startswith("auth.")]
    assert [(e.action, e.actor_username, e.ip) for e in events] == [
        ("auth.login", "bob", "192.0.2.50"),
        ("auth.logout", "bob", "192.0.2.50"),
    ]
    assert client.get("/admin/").status_code == HTTPStatus.FOUND, "the session ended"


def test_a_failed_login_records_the_username_and_address_never_the_password(client, staff_user, sealed_events):
    attempt(client, "bob", "wrong-password-123")

    event = next(e for e in sealed_events() if e.action == "auth.login_failed")
    assert (event.outcome, event.ip, event.details["username"]) == ("failure", "192.0.2.50", "bob")
    assert "wrong-password-123" not in str(event.__dict__)


def test_five_failures_lock_the_account_with_a_clear_message_and_one_lockout_event(client, staff_user, sealed_events):
    for n in range(5):
        attempt(client, "bob", f"wrong-{n}", ip=f"192.0.2.{n + 1}")  # other addresses: the username locks

    locked = attempt(client, "bob", "bob-password-12", ip="192.0.2.99")

    assert locked.status_code == HTTPStatus.OK
    assert "Too many failed logins. Try again in 15 minutes." in locked.content.decode()
    lockouts = [e for e in sealed_events() if e.action == "auth.lockout"]
    assert len(lockouts) == 1 and lockouts[0].details["by"] == "username"


def test_failures_from_one_address_lock_that_address_for_every_username(client, staff_user, superuser):
    for n in range(5):
        attempt(client, f"nobody-{n}", "guess", ip="198.51.100.9")

    assert "Too many failed logins" in attempt(client, "alice", "alice-password-1", ip="198.51.100.9").content.decode()
    assert attempt(client, "alice", "alice-password-1", ip="198.51.100.10").status_code == HTTPStatus.FOUND


def test_a_success_clears_the_usernames_failures(client, staff_user):
    for n in range(4):
        attempt(client, "bob", f"wrong-{n}", ip=f"192.0.2.{n}")
    assert attempt(client, "bob", "bob-password-12", ip="192.0.2.100").status_code == HTTPStatus.FOUND
    client.logout()
    for n in range(4):
        attempt(client, "bob", f"wrong-again-{n}", ip=f"192.0.2.{n + 10}")

    assert attempt(client, "bob", "bob-password-12", ip="192.0.2.101").status_code == HTTPStatus.FOUND


@pytest.mark.django_db(transaction=True)
def test_a_hundred_concurrent_guesses_get_at_most_five_password_checks(staff_user, monkeypatch):
    checks = []
    real_check = User.check_password
    monkeypatch.setattr(User, "check_password", lambda self, raw: checks.append(1) or real_check(self, raw))
    start = threading.Barrier(100)

    def guess(n: int) -> None:
        start.wait()
        with context.bound(context.RequestContext(ip=f"10.9.{n // 250}.{n % 250}")):
            try:
                ThrottledModelBackend().authenticate(None, username="bob", password=f"guess-{n}")
            except Exception:
                pass
            finally:
                connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 1 <= len(checks) <= 5


def test_a_deactivated_users_session_no_longer_works(staff_client, staff_user):
    assert staff_client.get("/admin/").status_code == HTTPStatus.OK

    staff_user.is_active = False
    staff_user.save()

    assert staff_client.get("/admin/").status_code == HTTPStatus.FOUND


@pytest.mark.django_db(transaction=True)
def test_deactivation_ends_the_users_sessions_for_good(staff_client, staff_user, client, superuser):
    client.force_login(superuser)  # someone else's session stays
    assert staff_client.get("/admin/").status_code == HTTPStatus.OK

    staff_user.is_active = False
    staff_user.save()
    staff_user.is_active = True
    staff_user.save()

    assert staff_client.get("/admin/").status_code == HTTPStatus.FOUND
    assert client.get("/admin/").status_code == HTTPStatus.OK
