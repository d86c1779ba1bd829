"""Every error of /api/v1/ is a problem document (RFC 9457) with the status it names: 400 with the field, 401, 403
for a scope or a permission, 404 for unknown paths and ids, 405 with Allow, 409, 413 and 429 with Retry-After;
and who may call: tokens, staff sessions (with CSRF for writes), nobody else."""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.test import Client

from apps.alerts import services
from apps.alerts.models import Alert
from apps.hooks.models import Scope

pytestmark = pytest.mark.django_db
ALERTS = "/api/v1/alerts/"
FIRE = {"source": "ci", "key": "deploy", "severity": "error", "summary": "deploy failed"}
JSON = "application/json"


def problem(response, status: int) -> dict:
    """The problem document, after checking its shape and that it says the response's status."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    document = response.json()
    assert set(document) == {"type", "title", "status", "detail", "instance", "errors"}
    assert (document["status"], document["title"], document["type"]) == (status, HTTPStatus(status).phrase,
                                                                         "about:blank")  # fmt: skip
    assert document["instance"] == response.wsgi_request.path and document["detail"]
    return document


# ---------------------------------------------------------------- 400


@pytest.mark.parametrize(
    ("data", "field"),
    [(b"{not json", "body"), (b'{"source": "ci"', "body"), (b"[1, 2]", "body"), (b'{"source": 7}', "source")],
)
def test_a_body_that_is_not_the_right_json_is_a_400_naming_the_field(write_client, data, field):
    document = problem(write_client.post(ALERTS, data, content_type=JSON), HTTPStatus.BAD_REQUEST)

    assert document["errors"][0]["field"] == field
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    ("data", "field", "detail"),
    [
        (b'{"source": "ci\\u0000", "key": "k", "severity": "info", "summary": "s"}', "source", "NUL character"),
        (b'{"source": "ci", "key": "k", "severity": "info", "summary": "s", "labels": {"a\\u0000": "b"}}',
         "labels.a\\0", "NUL"),
        (b'{"source": "ci", "key": "k", "severity": "info", "summary": "s", "value": NaN}', "body", "not valid JSON"),
        (b"[" * 40 + b"]" * 40, "body", "nested deeper than 32"),
    ],
)  # fmt: skip
def test_what_the_database_could_not_hold_is_refused_as_a_400_on_every_database(write_client, data, field, detail):
    document = problem(write_client.post(ALERTS, data, content_type=JSON), HTTPStatus.BAD_REQUEST)

    assert document["errors"][0]["field"] == field and detail in document["detail"]
    assert not Alert.objects.exists()


def test_a_nul_character_in_a_query_parameter_is_a_400_naming_it(read_client):
    document = problem(read_client.get(f"{ALERTS}?source=ci%00"), HTTPStatus.BAD_REQUEST)

    assert document["errors"] == [{"field": "source", "message": "source must not contain a NUL character"}]


@pytest.mark.parametrize("moment", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-05:00", "1969-12-31T23:59:59Z"])
def test_a_time_out_of_the_storable_range_is_a_400_naming_it(write_client, moment):
    body = {"matchers": ["source=ci"], "ends_at": moment, "comment": "deploy"}

    document = problem(write_client.post("/api/v1/silences/", body, content_type=JSON), HTTPStatus.BAD_REQUEST)

    message = "must be a time in ISO 8601 with its offset (2026-01-31T09:00:00Z), from 1970 to 8999"
    assert document["errors"] == [{"field": "ends_at", "message": message}]


def test_a_query_parameter_of_the_wrong_type_is_a_400_naming_it(read_client):
    document = problem(read_client.get(ALERTS, {"limit": "many"}), HTTPStatus.BAD_REQUEST)

    assert [error["field"] for error in document["errors"]] == ["limit"]


def test_a_body_over_the_upload_limit_is_a_413(write_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = write_client.post(ALERTS, {**FIRE, "description": "x" * 2000}, content_type=JSON)

    problem(response, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    assert not Alert.objects.exists()


# ---------------------------------------------------------------- 401


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer opsp_not-a-token-at-all", "Bearer ", "Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer ghp_1234567890"],
)
def test_without_a_valid_credential_the_answer_is_401_with_a_challenge(db, authorization):
    client = Client(headers={"authorization": authorization} if authorization else {})

    document = problem(client.get(ALERTS), HTTPStatus.UNAUTHORIZED)

    assert client.get(ALERTS)["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "token" in document["detail"]


def test_a_session_of_someone_who_is_not_staff_is_a_401(outsider_client):
    problem(outsider_client.get(ALERTS), HTTPStatus.UNAUTHORIZED)


# ---------------------------------------------------------------- 403


def test_a_read_token_cannot_write_403(read_client):
    document = problem(read_client.post(ALERTS, FIRE, content_type=JSON), HTTPStatus.FORBIDDEN)

    assert document["detail"] == "This token's scope is read; this request needs write."
    assert not Alert.objects.exists()


def test_a_token_cannot_do_more_than_its_user_403(make_user, bearer):
    client = bearer(make_user("grace", "alerts.view_alert"), Scope.WRITE)

    document = problem(client.post(ALERTS, FIRE, content_type=JSON), HTTPStatus.FORBIDDEN)

    assert document["detail"] == "This needs the alerts.add_alert permission."


# ---------------------------------------------------------------- 404 and 405


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/v1/nothing/", "No API endpoint at /api/v1/nothing/."),
        ("/api/v1/", "No API endpoint at /api/v1/."),
        ("/api/v1/alerts/12/nothing/", "No API endpoint at /api/v1/alerts/12/nothing/."),
        ("/api/v1/alerts", "No API endpoint at /api/v1/alerts. Did you mean /api/v1/alerts/?"),
    ],
)
def test_an_unknown_path_is_a_404_problem_not_an_html_page(read_client, path, detail):
    assert problem(read_client.get(path), HTTPStatus.NOT_FOUND)["detail"] == detail


def test_a_post_to_an_unknown_path_is_a_404_even_without_a_csrf_token(superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    problem(client.post("/api/v1/nothing/", FIRE, content_type=JSON), HTTPStatus.NOT_FOUND)


def test_an_unknown_id_is_a_404_problem(read_client):
    assert problem(read_client.get(f"{ALERTS}4242/"), HTTPStatus.NOT_FOUND)["detail"] == "No such object."


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", ALERTS, "GET, POST"),
        ("put", "/api/v1/silences/1/", "DELETE, GET, PATCH"),
        ("get", f"{ALERTS}1/acknowledge/", "POST"),
    ],
)
def test_a_method_the_path_does_not_take_is_a_405_with_allow(db, method, path, allowed):
    response = getattr(Client(), method)(path)

    assert problem(response, HTTPStatus.METHOD_NOT_ALLOWED)["detail"].endswith(f"use {allowed}.")
    assert response["Allow"] == allowed


# ---------------------------------------------------------------- 409


def test_acting_against_the_state_is_a_409(write_client):
    alert = services.alert_fire(source="ci", key="deploy", severity="error", summary="deploy failed")
    services.alert_resolve(source="ci", key="deploy")

    problem(write_client.post(f"{ALERTS}{alert.pk}/acknowledge/", content_type=JSON), HTTPStatus.CONFLICT)
    problem(write_client.post(f"{ALERTS}{alert.pk}/resolve/", content_type=JSON), HTTPStatus.CONFLICT)


# ---------------------------------------------------------------- 429


def test_a_caller_over_its_rate_gets_429_with_retry_after_until_the_next_minute(settings, superuser, bearer):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    with time_machine.travel(datetime(2031, 5, 4, 12, 30, 15, tzinfo=UTC), tick=False) as clock:
        client, other = bearer(superuser, Scope.READ), bearer(superuser, Scope.READ)
        answers = [client.get(ALERTS).status_code for _ in range(3)]
        refused = client.get(ALERTS)
        other_answer = other.get(ALERTS).status_code
        clock.shift(timedelta(seconds=45))
        next_minute = client.get(ALERTS).status_code

    assert answers == [HTTPStatus.OK] * 3
    assert "3 requests a minute" in problem(refused, HTTPStatus.TOO_MANY_REQUESTS)["detail"]
    assert refused["Retry-After"] == "45"
    assert other_answer == HTTPStatus.OK, "each token has its own count"
    assert next_minute == HTTPStatus.OK


# ---------------------------------------------------------------- staff sessions


def test_a_staff_session_reads_and_its_permissions_apply(superuser_client, staff_client):
    assert superuser_client.get(ALERTS).status_code == HTTPStatus.OK
    document = problem(staff_client.get(ALERTS), HTTPStatus.FORBIDDEN)
    assert document["detail"] == "This needs the alerts.view_alert permission."


def test_a_session_write_needs_the_csrf_token_as_in_the_admin(superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    refused = client.post(ALERTS, FIRE, content_type=JSON)
    client.get("/admin/")  # the admin's pages set the CSRF cookie a script then sends back
    accepted = client.post(ALERTS, FIRE, content_type=JSON, headers={"x-csrftoken": client.cookies["csrftoken"].value})

    assert "CSRF" in problem(refused, HTTPStatus.FORBIDDEN)["detail"]
    assert accepted.status_code == HTTPStatus.CREATED
    assert Alert.objects.get().fire_count == 1


def test_a_token_needs_no_csrf_token(superuser, make_token):
    client = Client(enforce_csrf_checks=True, headers={"authorization": f"Bearer {make_token(superuser, 'write')}"})

    assert client.post(ALERTS, FIRE, content_type=JSON).status_code == HTTPStatus.CREATED
