"""The health overview and each check's history in the admin: who sees them, what they show, what they cost."""

import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.health import services
from apps.health.checks import Status
from apps.health.models import CheckResult

OVERVIEW = "/admin/health/checkstate/"
HISTORY = "/admin/health/checkresult/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def test_settings(settings) -> None:
    """No costly password hashing for the users these tests create; stored results read on every request."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.HEALTH_REPORT_CACHE_SECONDS = 0


@pytest.fixture
def operator_client(staff_user) -> Client:
    """Staff allowed to view check states and results."""
    staff_user.user_permissions.add(*Permission.objects.filter(codename__in=["view_checkstate", "view_checkresult"]))
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def stored(scripted) -> None:
    scripted.add("database", message="SELECT 1 in 2 ms")
    scripted.add("disk", Status.WARNING, "85 % used of /var")
    scripted.add("redis", Status.CRITICAL, "connection refused")
    services.run_and_store()


def test_the_overview_shows_a_tile_per_check_coloured_by_status(operator_client, stored):
    response = operator_client.get(OVERVIEW)

    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    for name, status, message in [
        ("database", "ok", "SELECT 1 in 2 ms"),
        ("disk", "warning", "85 % used of /var"),
        ("redis", "critical", "connection refused"),
    ]:
        tile = re.search(rf'<li class="health-tile health-(\w+)" data-check="{name}">(.*?)</li>', page, re.S)
        assert tile, name
        assert tile[1] == status and message in tile[2] and "since" in tile[2] and " ms" in tile[2]
        assert f'href="{HISTORY}?name={name}"' in tile[2]
    assert 'data-field="overall">critical<' in page


def test_the_overview_refreshes_itself_from_health_without_a_cdn(operator_client, stored):
    page = operator_client.get(OVERVIEW).content.decode()

    assert 'data-url="/health/"' in page and "/static/opsportal/health.js" in page
    assert '<meta http-equiv="refresh"' in page, "without JavaScript, the page reloads itself"
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing is loaded from another site"
    assert finders.find("opsportal/health.css") and finders.find("opsportal/health.js")


def test_the_overview_is_reachable_from_the_admin_index(operator_client):
    page = operator_client.get("/admin/").content.decode()

    assert f'href="{OVERVIEW}"' in page and f'href="{HISTORY}"' in page


def test_the_overview_reads_one_row_per_check_whatever_the_history(operator_client, stored):
    with CaptureQueriesContext(connection) as queries:
        operator_client.get(OVERVIEW)

    health = [q["sql"] for q in queries.captured_queries if "health_" in q["sql"]]
    assert len(health) == 1 and "health_checkstate" in health[0]


def test_the_overview_says_when_nothing_is_stored_yet(operator_client, only_checks):
    page = operator_client.get(OVERVIEW).content.decode()

    assert "No results are stored yet" in page


def test_run_now_shows_fresh_results_without_storing_them(operator_client, stored, scripted):
    scripted.set("redis", Status.OK, "PONG in 1 ms")

    page = operator_client.get(OVERVIEW, {"fresh": "1"}).content.decode()

    assert "PONG in 1 ms" in page and "not stored" in page
    assert "/static/opsportal/health.js" not in page, "a fresh page is not replaced by stored results"
    assert services.latest()[2].message == "connection refused"


def test_a_malformed_fresh_is_a_400_not_a_500(operator_client):
    assert operator_client.get(OVERVIEW, {"fresh": "banana"}).status_code == HTTPStatus.BAD_REQUEST


def test_staff_without_the_permission_get_403(staff_client):
    assert staff_client.get(OVERVIEW).status_code == HTTPStatus.FORBIDDEN
    assert staff_client.get(HISTORY).status_code == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize("persona", ["client", "outsider_client"])
def test_anyone_else_is_sent_to_the_login_page(request, persona):
    for path in (OVERVIEW, HISTORY):
        response = request.getfixturevalue(persona).get(path)

        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith("/admin/login/")


def test_the_states_are_read_only_even_for_a_superuser(admin_client, stored):
    assert admin_client.get("/admin/health/checkstate/add/").status_code == HTTPStatus.FORBIDDEN
    assert admin_client.get("/admin/health/checkresult/add/").status_code == HTTPStatus.FORBIDDEN


# ---------------------------------------------------------------- history


def add_history(name: str, count: int, status: str = Status.OK) -> None:
    now = timezone.now()
    CheckResult.objects.bulk_create(
        CheckResult(
            name=name,
            status=status,
            message=f"result {n}",
            latency_ms=n / 10,
            checked_at=now - timedelta(seconds=30 * n),
        )
        for n in range(count)
    )


def test_a_checks_history_lists_its_results_newest_first(operator_client):
    add_history("disk", 3, Status.WARNING)
    add_history("database", 2)

    response = operator_client.get(HISTORY, {"name": "disk"})

    assert response.status_code == HTTPStatus.OK
    results = list(response.context["cl"].result_list)
    assert [r.message for r in results] == ["result 0", "result 1", "result 2"]
    assert all(r.name == "disk" for r in results)
    assert 'class="health-badge health-warning"' in response.content.decode()


def test_the_history_is_paginated_and_never_counts_the_whole_table(operator_client):
    add_history("disk", 150)

    with CaptureQueriesContext(connection) as queries:
        second = operator_client.get(HISTORY, {"name": "disk", "p": "2"})

    assert second.status_code == HTTPStatus.OK
    assert [r.message for r in second.context["cl"].result_list][:1] == ["result 100"]
    assert len(second.context["cl"].result_list) == 50
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert not any("DISTINCT" in q["sql"].upper() for q in queries.captured_queries)


def test_the_history_of_a_check_that_no_longer_runs_is_still_shown(operator_client):
    add_history("target:gone", 2, Status.CRITICAL)

    response = operator_client.get(HISTORY, {"name": "target:gone"})

    assert response.status_code == HTTPStatus.OK and len(response.context["cl"].result_list) == 2


def test_the_history_filters_by_status(operator_client):
    add_history("disk", 2, Status.WARNING)
    add_history("disk", 1, Status.CRITICAL)

    response = operator_client.get(HISTORY, {"name": "disk", "status__exact": "critical"})

    assert [r.status for r in response.context["cl"].result_list] == ["critical"]


@pytest.mark.parametrize("query", [{"o": "2"}, {"p": "banana"}, {"name": "x" * 5000}, {"unknown": "1"}])
def test_bad_history_parameters_never_cause_a_500(operator_client, query):
    assert operator_client.get(HISTORY, query).status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
