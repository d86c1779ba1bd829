"""Bad input to the API is a 400 problem naming the field, never a 500: what schemathesis found, pinned.

A NUL character reached PostgreSQL (which refuses it in text: a 500 there); a
cursor of Unicode digits ("²".isdigit() is true) reached int(); a label filter
the schema called any string was refused. The schema now says what is accepted
and the parser refuses NUL characters everywhere.
"""

import json
from http import HTTPStatus

import pytest
from django.test import RequestFactory

from apps.alerts.models import State
from apps.alerts.services import alert_fire
from apps.hooks.api.alerts import MAX_LABEL_FILTERS
from apps.hooks.api.parser import ApiParser
from apps.hooks.api.problems import CONTENT_TYPE, ApiError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def problem_fields(response) -> list[str]:
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response["Content-Type"] == CONTENT_TYPE
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [("source=%00", "source"), ("label=team%3D%00", "label"), ("cursor=1%00", "cursor"), ("x%00=1", "x\\0")],
)
def test_a_nul_character_anywhere_in_the_query_is_a_400_naming_the_field(read_client, query, field):
    assert problem_fields(read_client.get(f"/api/v1/alerts/?{query}")) == [field]


@pytest.mark.parametrize("cursor", ["²", "abc", "-1", "1.5", "1" * 41])
def test_a_cursor_that_is_not_an_id_is_a_400_naming_the_cursor(read_client, cursor):
    assert problem_fields(read_client.get("/api/v1/alerts/", {"cursor": cursor})) == ["cursor"]


def test_the_largest_cursor_is_past_every_row_not_an_error(read_client):
    alert_fire(source="api-test", key="one", severity="warning", summary="one")

    response = read_client.get("/api/v1/alerts/", {"cursor": "9" * 19})

    assert response.status_code == HTTPStatus.OK
    assert [item["key"] for item in response.json()["items"]] == ["one"]


@pytest.mark.parametrize("label", ["team", "=web", "9team=web", "te am=web"])
def test_a_label_filter_that_is_not_name_equals_value_is_a_400_naming_it(read_client, label):
    assert problem_fields(read_client.get("/api/v1/alerts/", {"label": ["team=web", label]})) == ["label.1"]


def test_more_label_filters_than_the_limit_are_a_400(read_client):
    labels = [f"l{number}=x" for number in range(MAX_LABEL_FILTERS + 1)]

    assert problem_fields(read_client.get("/api/v1/alerts/", {"label": labels})) == ["label"]


def test_a_label_value_may_hold_an_equals_sign(read_client):
    alert_fire(source="api-test", key="eq", severity="warning", summary="eq", labels={"query": "a=b"})

    response = read_client.get("/api/v1/alerts/", {"label": "query=a=b"})

    assert [item["key"] for item in response.json()["items"]] == ["eq"]


def parse(body: bytes) -> object:
    return ApiParser().parse_body(RequestFactory().post("/api/v1/", body, content_type="application/json"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"summary": "a\x00b"}, "summary"),
        ({"labels": {"te\x00am": "web"}}, "labels.te\\0am"),
        ({"items": [{"ok": 1}, {"text": ["x", "\x00"]}]}, "items.1.text.1"),
        ("\x00", "body"),
    ],
)
def test_a_nul_character_in_a_json_body_is_a_400_naming_where(body, field):
    with pytest.raises(ApiError) as refused:
        parse(json.dumps(body).encode())

    assert refused.value.status == HTTPStatus.BAD_REQUEST
    assert [error["field"] for error in refused.value.errors] == [field]


@pytest.mark.parametrize("body", [b'{"value": NaN}', b'{"value": Infinity}', b"[" * 40 + b"]" * 40, b"\xff"])
def test_a_body_strict_json_refuses_is_a_400(body):
    with pytest.raises(ApiError) as refused:
        parse(body)

    assert refused.value.status == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize("body", [b"[null, null]", b"[]", b"3", b'"comment"', b"true"])
def test_a_body_that_is_not_an_object_is_a_400_naming_the_body(write_client, body):
    # ninja would take it for an object with every field missing, where every field has a default.
    alert = alert_fire(source="api-test", key="ack", severity="warning", summary="ack")

    for path in ("/api/v1/health/run/", f"/api/v1/alerts/{alert.pk}/acknowledge/"):
        assert problem_fields(write_client.post(path, body, content_type="application/json")) == ["body"]
    alert.refresh_from_db()
    assert alert.state == State.FIRING


def test_a_json_body_without_nul_characters_is_read_as_it_is():
    body = {"summary": "disk full", "labels": {"team": "web"}, "value": 0.5, "tags": ["a", None]}

    assert parse(json.dumps(body).encode()) == body
