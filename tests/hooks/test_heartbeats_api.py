"""/api/v1/heartbeats/: the contract scripts rely on (shapes, fields named in errors, 403 / 404, pages)."""

from datetime import datetime, timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.alerts.models import State
from apps.hooks.models import Heartbeat, Scope
from tests.hooks.heartbeat_helpers import alert_of, make_heartbeat, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

BASE = "/api/v1/heartbeats/"


def problem_fields(response) -> set[str]:
    assert response["Content-Type"] == "application/problem+json"
    return {error["field"] for error in response.json()["errors"]}


def test_creating_a_heartbeat_answers_201_with_its_absolute_ping_urls(write_client, superuser):
    payload = {"name": "nightly-export", "cron": "0 3 * * *", "timezone": "Europe/Paris"}

    response = write_client.post(BASE, payload, content_type="application/json")

    assert response.status_code == HTTPStatus.CREATED
    body = response.json()
    heartbeat = Heartbeat.objects.get(name="nightly-export")
    base = f"http://testserver/hooks/heartbeat/{heartbeat.uuid}"
    assert body["ping_urls"] == {"success": base, "start": f"{base}/start", "fail": f"{base}/fail"}
    assert body["uuid"] == str(heartbeat.uuid) and body["id"] == heartbeat.pk
    assert (body["status"], body["deadline"], body["last_ping_at"]) == ("new", None, None)
    assert (body["period_seconds"], body["grace_seconds"], body["severity"]) == (None, 300, "error")
    assert heartbeat.created_by == superuser


def test_a_heartbeat_shows_its_last_ping_status_and_deadline(read_client):
    heartbeat = make_heartbeat(period_seconds=600, grace_seconds=60)
    ping = send(heartbeat)

    body = read_client.get(f"{BASE}{heartbeat.pk}/").json()

    assert body["status"] == "up"
    # To the microsecond, as stored: a script can pass a time it read back as a filter, exactly.
    assert datetime.fromisoformat(body["last_ping_at"]) == ping.at
    assert datetime.fromisoformat(body["deadline"]) == Heartbeat.objects.get(pk=heartbeat.pk).deadline


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"cron": "0 3 * *"}, {"cron"}),
        ({"cron": "every night"}, {"cron"}),
        ({"cron": "0 3 * * *", "timezone": "Europe/Atlantis"}, {"timezone"}),
        ({"cron": "0 3 * * *", "period_seconds": 86400}, {"cron", "period_seconds"}),
        ({}, {"period_seconds"}),
        ({"period_seconds": 60, "grace_seconds": -5}, {"grace_seconds"}),
        ({"period_seconds": 60, "severity": "loud"}, {"severity"}),
        ({"period_seconds": "often"}, {"period_seconds"}),
    ],
)
def test_a_bad_definition_is_400_naming_the_field(write_client, payload, fields):
    response = write_client.post(BASE, {"name": "job", **payload}, content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert problem_fields(response) == fields
    assert not Heartbeat.objects.exists()


def test_a_taken_name_is_a_409_on_create_and_on_rename(write_client):
    make_heartbeat(name="job")
    other = make_heartbeat(name="other")

    created = write_client.post(BASE, {"name": "job", "period_seconds": 60}, content_type="application/json")
    renamed = write_client.patch(f"{BASE}{other.pk}/", {"name": "job"}, content_type="application/json")

    for response in (created, renamed):
        assert response.status_code == HTTPStatus.CONFLICT
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["detail"] == "A heartbeat named 'job' already exists."
    assert sorted(Heartbeat.objects.values_list("name", flat=True)) == ["job", "other"]


def test_a_taken_name_with_another_fault_is_a_400_naming_both(write_client):
    make_heartbeat(name="job")

    response = write_client.post(BASE, {"name": "job", "cron": "every night"}, content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert problem_fields(response) == {"name", "cron"}


def test_patch_changes_only_the_fields_sent_and_moves_the_deadline(write_client):
    heartbeat = make_heartbeat(name="job", period_seconds=3600, description="kept")
    ping = send(heartbeat)

    response = write_client.patch(
        f"{BASE}{heartbeat.pk}/", {"period_seconds": None, "cron": "*/5 * * * *"}, content_type="application/json"
    )

    assert response.status_code == HTTPStatus.OK
    heartbeat = Heartbeat.objects.get(pk=heartbeat.pk)
    assert (heartbeat.cron, heartbeat.period_seconds, heartbeat.description) == ("*/5 * * * *", None, "kept")
    assert ping.at < heartbeat.deadline <= ping.at.replace(microsecond=0) + heartbeat_window(heartbeat)


def heartbeat_window(heartbeat: Heartbeat) -> timedelta:
    return timedelta(minutes=5, seconds=heartbeat.grace_seconds + 1)


def test_patch_refuses_a_cron_next_to_a_period_naming_both(write_client):
    heartbeat = make_heartbeat(period_seconds=3600)

    response = write_client.patch(f"{BASE}{heartbeat.pk}/", {"cron": "0 3 * * *"}, content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert problem_fields(response) == {"cron", "period_seconds"}


def test_patch_refuses_null_for_a_field_that_cannot_be_empty(write_client):
    heartbeat = make_heartbeat()

    response = write_client.patch(f"{BASE}{heartbeat.pk}/", {"enabled": None}, content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert problem_fields(response) == {"enabled"}
    assert Heartbeat.objects.get(pk=heartbeat.pk).enabled


def test_deleting_answers_204_and_resolves_the_open_alert(write_client):
    heartbeat = make_heartbeat()
    send(heartbeat, "fail")

    response = write_client.delete(f"{BASE}{heartbeat.pk}/")

    assert response.status_code == HTTPStatus.NO_CONTENT
    assert not Heartbeat.objects.exists()
    assert alert_of(heartbeat).state == State.RESOLVED


@pytest.mark.parametrize(("method", "payload"), [("get", None), ("patch", {"grace_seconds": 60}), ("delete", None)])
@pytest.mark.parametrize("heartbeat_id", ["999999", "99999999999999999999999"])
def test_an_unknown_heartbeat_is_404(write_client, method, payload, heartbeat_id):
    response = getattr(write_client, method)(f"{BASE}{heartbeat_id}/", payload, content_type="application/json")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "", {"name": "job", "period_seconds": 60}),
        ("patch", "{id}/", {"grace_seconds": 60}),
        ("delete", "{id}/", None),
    ],
)
def test_a_read_token_cannot_write(read_client, method, path, payload):
    heartbeat = make_heartbeat(name="existing")

    address = BASE + path.format(id=heartbeat.pk)

    response = getattr(read_client, method)(address, payload, content_type="application/json")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "scope" in response.json()["detail"]
    assert list(Heartbeat.objects.values_list("name", "grace_seconds")) == [("existing", 300)]


def test_a_token_acts_with_its_users_permissions(staff_user, make_token):
    heartbeat = make_heartbeat()
    client = Client(headers={"authorization": f"Bearer {make_token(staff_user, Scope.WRITE)}"})

    refused = client.get(BASE)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_heartbeat"))
    listed = client.get(BASE)
    changed = client.patch(f"{BASE}{heartbeat.pk}/", {"grace_seconds": 1}, content_type="application/json")

    assert refused.status_code == HTTPStatus.FORBIDDEN and "hooks.view_heartbeat" in refused.json()["detail"]
    assert listed.status_code == HTTPStatus.OK
    assert changed.status_code == HTTPStatus.FORBIDDEN and "hooks.change_heartbeat" in changed.json()["detail"]


def test_the_list_comes_in_keyset_pages_oldest_first(read_client):
    names = [make_heartbeat(name=f"job-{n}").name for n in range(5)]

    first = read_client.get(BASE, {"limit": 2}).json()
    second = read_client.get(BASE, {"limit": 2, "cursor": first["next"]}).json()
    last = read_client.get(BASE, {"limit": 2, "cursor": second["next"]}).json()

    assert [item["name"] for item in first["items"] + second["items"] + last["items"]] == names
    assert last["next"] is None


def test_the_list_filters_by_status(read_client):
    up, _ = make_heartbeat(name="up"), make_heartbeat(name="new")
    send(up)

    body = read_client.get(BASE, {"status": "up"}).json()

    assert [item["name"] for item in body["items"]] == ["up"]
    assert read_client.get(BASE, {"status": "sideways"}).status_code == HTTPStatus.BAD_REQUEST
