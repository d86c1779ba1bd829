"""/api/v1/health/: the stored results, one check's history, run now; who may, and the error shapes."""

from http import HTTPStatus

import pytest

from apps.health import services
from apps.health.checks import Status
from apps.health.models import CheckResult
from tests.health.conftest import only_checks, scripted  # noqa: F401 - fixtures: checks the test scripts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
URL = "/api/v1/health/"
PROBLEM = "application/problem+json"


def run(client, payload: dict | None = None):
    return client.post(f"{URL}run/", payload or {}, content_type="application/json")


@pytest.fixture
def stored(scripted):  # noqa: F811 - the imported fixture
    """Two checks, run twice and stored by the scheduled run's own service (db recovers from critical)."""
    scripted.add("db", Status.CRITICAL, "connection refused")
    scripted.add("disk", Status.WARNING, "85 % used")
    services.run_and_store()
    scripted.set("db", Status.OK, "SELECT 1 in 2 ms")
    services.run_and_store()
    return scripted


def test_the_latest_result_of_every_check_and_the_worst_status(read_client, stored):
    response = read_client.get(URL)

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "warning"
    assert [(check["name"], check["status"], check["message"]) for check in body["checks"]] == [
        ("db", "ok", "SELECT 1 in 2 ms"),
        ("disk", "warning", "85 % used"),
    ]
    assert set(body["checks"][0]) == {"name", "status", "message", "details", "latency_ms", "checked_at", "since",
                                      "alerted"}  # fmt: skip


def test_before_any_run_the_overall_status_is_unknown(read_client, only_checks):  # noqa: F811
    assert read_client.get(URL).json() == {"status": "unknown", "checks": []}


def test_a_checks_history_is_newest_first_and_limited(read_client, stored):
    response = read_client.get(f"{URL}db/history/")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["name"] == "db"
    assert [item["status"] for item in response.json()["items"]] == ["ok", "critical"]
    assert [item["status"] for item in read_client.get(f"{URL}db/history/", {"limit": 1}).json()["items"]] == ["ok"]


def test_a_check_name_with_colons_and_slashes_has_its_history_too(read_client, scripted):  # noqa: F811
    scripted.add("target:queue/depth", Status.OK, "12 waiting")
    services.run_and_store()

    response = read_client.get(f"{URL}target:queue/depth/history/")

    assert response.status_code == HTTPStatus.OK
    assert [item["message"] for item in response.json()["items"]] == ["12 waiting"]


def test_a_check_that_exists_but_never_ran_has_an_empty_history(read_client, scripted):  # noqa: F811
    scripted.add("fresh")

    response = read_client.get(f"{URL}fresh/history/")

    assert (response.status_code, response.json()) == (HTTPStatus.OK, {"name": "fresh", "items": []})


def test_the_history_of_an_unknown_check_is_404_as_a_problem(read_client, stored):
    response = read_client.get(f"{URL}nonesuch/history/")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == PROBLEM and response.json()["status"] == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_a_bad_history_limit_is_a_400_naming_it(read_client, stored, limit):
    response = read_client.get(f"{URL}db/history/", {"limit": limit})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert [error["field"] for error in response.json()["errors"]] == ["limit"]


def test_run_now_runs_every_check_and_answers_without_storing(write_client, stored):
    stored.set("disk", Status.CRITICAL, "99 % used")
    before = CheckResult.objects.count()

    response = run(write_client)

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["status"] == "critical"
    assert {check["name"]: check["message"] for check in body["checks"]} == {"db": "SELECT 1 in 2 ms",
                                                                             "disk": "99 % used"}  # fmt: skip
    assert CheckResult.objects.count() == before  # the scheduled run alone stores and alerts
    assert write_client.get(URL).json()["status"] == "warning"


def test_run_now_without_a_body_runs_every_check(write_client, stored):
    response = write_client.generic("POST", f"{URL}run/")  # as `curl -X POST`: no body, no content type

    assert response.status_code == HTTPStatus.OK
    assert [check["name"] for check in response.json()["checks"]] == ["db", "disk"]


def test_run_now_can_run_only_the_checks_named(write_client, stored):
    calls = dict(stored.calls)

    response = run(write_client, {"checks": ["disk"], "timeout": 2})

    assert [check["name"] for check in response.json()["checks"]] == ["disk"]
    assert stored.calls["db"] == calls["db"] and stored.calls["disk"] == calls["disk"] + 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"checks": ["db", "nonesuch"]}, "checks"),
        ({"checks": []}, "checks"),
        ({"checks": "db"}, "checks"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 61}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_bad_run_now_input_is_a_400_naming_the_field(write_client, stored, payload, field):
    response = run(write_client, payload)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response["Content-Type"] == PROBLEM
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert stored.calls == {"db": 2, "disk": 2}  # nothing ran


def test_run_now_refuses_a_read_token(read_client, stored):
    response = run(read_client)

    assert response.status_code == HTTPStatus.FORBIDDEN and "write" in response.json()["detail"]
    assert stored.calls == {"db": 2, "disk": 2}


def test_without_credentials_every_endpoint_is_401(client, stored):
    for response in (client.get(URL), client.get(f"{URL}db/history/"), run(client)):
        assert response.status_code == HTTPStatus.UNAUTHORIZED and response["Content-Type"] == PROBLEM


def test_staff_need_the_admins_permissions(staff_client, staff_user, api_client, grant, stored):
    writer = api_client(staff_user, "write")
    refused = [staff_client.get(URL), staff_client.get(f"{URL}db/history/"), run(writer)]
    assert [response.status_code for response in refused] == [HTTPStatus.FORBIDDEN] * 3
    assert "health.view_checkstate" in refused[0].json()["detail"]

    grant(staff_user, "health.view_checkstate")
    assert staff_client.get(URL).status_code == HTTPStatus.OK
    assert run(writer).status_code == HTTPStatus.OK
    assert staff_client.get(f"{URL}db/history/").status_code == HTTPStatus.FORBIDDEN  # the history is its own

    grant(staff_user, "health.view_checkresult")
    assert staff_client.get(f"{URL}db/history/").status_code == HTTPStatus.OK
