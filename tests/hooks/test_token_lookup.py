"""What a request costs to authenticate: one query for the token (none when this process may reuse it),
the use recorded at most once a minute, the rate counted in one round trip; and what may never be reused.

The rate limit runs on the local-memory cache embedded and on Redis in the
production run (one pipelined round trip there).
"""

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.hooks import tokens
from apps.hooks.models import ApiToken, Scope
from tests.services import REDIS_DOWN

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
IP = "192.0.2.7"


@pytest.fixture
def cache_tokens(settings):
    settings.API_TOKEN_CACHE_SECONDS = 30
    tokens._recent.clear()
    yield
    tokens._recent.clear()


def token_statements(run) -> list[str]:
    """The SQL statements on API tokens that run() executes (PostgreSQL adds the audit context's own)."""
    with CaptureQueriesContext(connection) as captured:
        assert run() is not None
    return [query["sql"].split()[0] for query in captured.captured_queries if "hooks_apitoken" in query["sql"]]


def test_a_token_is_looked_up_by_one_query_and_its_use_recorded_once_a_minute(superuser, make_token, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0  # the default without Redis
    token = make_token(superuser)

    assert token_statements(lambda: tokens.token_authenticate(token, ip=IP)) == ["SELECT", "UPDATE"]
    assert token_statements(lambda: tokens.token_authenticate(token, ip=IP)) == ["SELECT"]
    assert ApiToken.objects.get().last_used_ip == IP


@pytest.mark.usefixtures("cache_tokens")
def test_a_process_that_may_reuse_tokens_looks_one_up_once(superuser, make_token):
    token = make_token(superuser)
    tokens.token_authenticate(token, ip=IP)

    assert token_statements(lambda: tokens.token_authenticate(token, ip=IP)) == []
    assert tokens.token_authenticate(token, ip=IP).user == superuser


@pytest.mark.usefixtures("cache_tokens")
def test_each_request_gets_its_own_copy_of_a_reused_token_and_user(superuser, make_token):
    token = make_token(superuser)
    first = tokens.token_authenticate(token, ip=IP)
    first.user.note = "set by one request"

    second = tokens.token_authenticate(token, ip=IP)

    assert second is not first and second.user is not first.user
    assert not hasattr(second.user, "note")


@pytest.mark.usefixtures("cache_tokens")
def test_a_token_revoked_here_is_refused_at_once_though_reused(superuser):
    row, token = tokens.token_create(user=superuser, name="ci", scope=Scope.READ)
    assert tokens.token_authenticate(token, ip=IP) is not None

    tokens.token_revoke(row)

    assert tokens.token_authenticate(token, ip=IP) is None


@pytest.mark.usefixtures("cache_tokens")
def test_a_token_revoked_by_another_process_is_refused_here_at_once(superuser):
    row, token = tokens.token_create(user=superuser, name="ci", scope=Scope.READ)
    assert tokens.token_authenticate(token, ip=IP) is not None

    # What `manage.py api token revoke` or another web process does: the row, then a new epoch after the commit
    # (this process's own list of recent tokens untouched).
    ApiToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    tokens.EPOCH.move()

    assert tokens.token_authenticate(token, ip=IP) is None


@pytest.mark.usefixtures("cache_tokens")
def test_deactivating_a_user_or_changing_a_token_moves_the_epoch_at_the_commit(
    superuser, make_token, django_capture_on_commit_callbacks
):
    make_token(superuser)
    row = ApiToken.objects.get()
    before = tokens.EPOCH.read()
    with django_capture_on_commit_callbacks(execute=True):
        superuser.is_active = False
        superuser.save()
    deactivated = tokens.EPOCH.read()
    with django_capture_on_commit_callbacks(execute=True):
        row.scope = Scope.WRITE
        row.save()

    assert len({before, deactivated, tokens.EPOCH.read()}) == 3


@pytest.mark.usefixtures("cache_tokens")
def test_a_reused_token_is_refused_once_it_expires(superuser, make_token):
    token = make_token(superuser, expires_in=timedelta(minutes=5))
    assert tokens.token_authenticate(token, ip=IP) is not None

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert tokens.token_authenticate(token, ip=IP) is None


def test_past_the_rate_limit_a_token_gets_429_with_retry_after_and_another_token_does_not(
    superuser, make_token, settings
):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    busy, other = (Client(headers={"authorization": f"Bearer {make_token(superuser)}"}) for _ in range(2))
    with time_machine.travel(timezone.now().replace(second=1), tick=False):  # one window: not at a minute's end
        answers = [busy.get("/api/v1/alerts/").status_code for _ in range(4)]
        refused = busy.get("/api/v1/alerts/")
        assert other.get("/api/v1/alerts/").status_code == HTTPStatus.OK

    assert answers == [HTTPStatus.OK] * 3 + [HTTPStatus.TOO_MANY_REQUESTS]
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_with_redis_down_the_api_answers_unlimited_and_looks_tokens_up(superuser, make_token, settings, log_lines):
    settings.API_TOKEN_CACHE_SECONDS = 60
    tokens._recent.clear()
    token = make_token(superuser)
    caller = Client(headers={"authorization": f"Bearer {token}"})

    with override_settings(CACHES=REDIS_DOWN):
        answers = [caller.get("/api/v1/alerts/").status_code for _ in range(2)]
        assert token_statements(lambda: tokens.token_authenticate(token, ip="127.0.0.1")) == ["SELECT"]  # no reuse

    assert answers == [HTTPStatus.OK, HTTPStatus.OK]
    events = {line["event"] for line in log_lines()}
    assert {"api_rate_limit_unavailable", "epoch_unreadable"} <= events
