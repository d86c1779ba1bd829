"""/hooks/heartbeat/<uuid>[/start|/fail]: what a cron job's curl sees, and what it leaves behind."""

import json
import uuid
from http import HTTPStatus

import pytest
from django.core.cache import cache
from django.test import Client

from apps.alerts.models import State
from apps.hooks.models import Heartbeat, HeartbeatPing
from tests.hooks.heartbeat_helpers import alert_of, make_heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def heartbeat() -> Heartbeat:
    return make_heartbeat(name="nightly-backup")


def url(heartbeat: Heartbeat, ending: str = "") -> str:
    return f"/hooks/heartbeat/{heartbeat.uuid}{ending}"


@pytest.mark.parametrize("method", ["get", "head", "post"])
@pytest.mark.parametrize("slash", ["", "/"])
def test_a_ping_by_get_head_or_post_answers_ok_and_is_recorded(client, heartbeat, method, slash):
    response = getattr(client, method)(url(heartbeat, slash), headers={"user-agent": "curl/8.5.0"})

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == (b"" if method == "head" else b"OK")
    ping = heartbeat.pings.get()
    assert (ping.kind, ping.method, ping.ip, ping.user_agent) == ("success", method.upper(), "127.0.0.1", "curl/8.5.0")
    assert Heartbeat.objects.get(pk=heartbeat.pk).status == Heartbeat.Status.UP


@pytest.mark.parametrize(
    ("ending", "kind", "status"),
    [
        ("/start", "start", Heartbeat.Status.STARTED),
        ("/start/", "start", Heartbeat.Status.STARTED),
        ("/fail", "fail", Heartbeat.Status.FAILED),
        ("/fail/", "fail", Heartbeat.Status.FAILED),
    ],
)
def test_start_and_fail_are_pinged_with_or_without_a_trailing_slash(client, heartbeat, ending, kind, status):
    assert client.get(url(heartbeat, ending)).status_code == HTTPStatus.OK

    assert heartbeat.pings.get().kind == kind
    assert Heartbeat.objects.get(pk=heartbeat.pk).status == status


def test_fail_fires_the_alert_at_once_and_the_next_success_resolves_it(client, heartbeat):
    client.post(url(heartbeat, "/fail"), b"exit status 2", content_type="text/plain")
    assert alert_of(heartbeat).state == State.FIRING

    client.get(url(heartbeat))

    assert alert_of(heartbeat).state == State.RESOLVED


def test_a_post_body_is_kept_up_to_10_kb(client, heartbeat):
    body = "é" * 3000 + "x" * 20_000  # 6,000 bytes of two-byte characters, then plain ones

    client.post(url(heartbeat), body.encode(), content_type="text/plain")

    kept = heartbeat.pings.get().body
    assert len(kept.encode()) == 10 * 1024 and kept.startswith("é" * 3000)


def test_a_body_over_1_mib_is_refused_with_413_before_it_is_read(client, heartbeat, settings):
    response = client.generic(
        "POST", url(heartbeat), b"x", content_type="text/plain", CONTENT_LENGTH=str(settings.HOOKS_MAX_BODY_BYTES + 1)
    )

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert not heartbeat.pings.exists()


@pytest.mark.parametrize("code", [uuid.uuid4(), "not-a-uuid", "0" * 40])
def test_an_unknown_uuid_is_404_counted_as_not_found(client, code):
    counted = cache.get("hooks-rejected:heartbeat:not_found", 0)  # Redis is shared by the test processes

    response = client.get(f"/hooks/heartbeat/{code}/fail")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"error": "No heartbeat has this address."}
    assert cache.get("hooks-rejected:heartbeat:not_found") > counted
    assert not HeartbeatPing.objects.exists()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_other_methods_are_refused_with_405_never_500(client, heartbeat, method):
    response = client.generic(method, url(heartbeat), b"{}")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == "GET, HEAD, POST"
    assert not heartbeat.pings.exists()


@pytest.mark.parametrize(
    "body", [b"\x00\xff\xfe binary", b"{" * 10_000, "¡ünïcødé!".encode("utf-16")], ids=["nul", "deep", "utf16"]
)
def test_any_body_is_accepted_as_text(client, heartbeat, body):
    response = client.post(url(heartbeat), body, content_type="application/octet-stream")

    assert response.status_code == HTTPStatus.OK
    assert heartbeat.pings.count() == 1


def test_a_ping_needs_no_session_and_no_csrf_token(heartbeat):
    response = Client(enforce_csrf_checks=True).post(url(heartbeat), b"done", content_type="text/plain")

    assert response.status_code == HTTPStatus.OK


def test_log_lines_name_the_ping_path_without_its_uuid(client, heartbeat, log_lines):
    client.get(f"/hooks/heartbeat/{heartbeat.uuid}/start")
    client.put(f"/hooks/heartbeat/{heartbeat.uuid}")  # refused (405): logged by Django and by the hook too

    lines = [line for line in log_lines() if "/hooks/heartbeat/" in str(line)]

    assert {line["event"] for line in lines} >= {"request_finished", "hook_rejected"}
    assert [line for line in log_lines() if str(heartbeat.uuid) in json.dumps(line)] == []
