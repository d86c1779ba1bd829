import uuid

import pytest
from celery.result import AsyncResult
from django.test import Client

from apps.core import context
from apps.core.tasks import ping


def request_lines(lines: list[dict], event: str) -> list[dict]:
    return [line for line in lines if line.get("event") == event]


@pytest.mark.django_db
def test_a_well_formed_request_id_is_honoured_echoed_and_logged(client, log_lines):
    response = client.get("/admin/login/", headers={"X-Request-ID": "abc-123.def:456"})

    assert response["X-Request-ID"] == "abc-123.def:456"
    finished = request_lines(log_lines(), "request_finished")[-1]
    assert finished["request_id"] == "abc-123.def:456"
    assert finished["ip"] == "127.0.0.1"


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["short", "x" * 200, "has space here", "semi;colon;injection", "<script>"])
def test_a_malformed_request_id_is_replaced_with_a_fresh_one(client, bad):
    response = client.get("/admin/login/", headers={"X-Request-ID": bad})

    assert uuid.UUID(response["X-Request-ID"])


@pytest.mark.django_db
def test_every_line_of_a_request_carries_request_id_user_and_ip(staff_client, staff_user, log_lines):
    response = staff_client.get("/admin/", REMOTE_ADDR="192.0.2.10")

    request_id = response["X-Request-ID"]
    lines = [line for line in log_lines() if line.get("request_id") == request_id]
    assert [line["event"] for line in lines] == ["request_finished"]
    assert all(line["ip"] == "192.0.2.10" and line["user_id"] == staff_user.pk for line in lines)
    assert lines[0]["code"] == 200 and lines[0]["duration_ms"] > 0


@pytest.mark.django_db
def test_forwarded_for_from_an_untrusted_peer_is_ignored(client, log_lines, settings):
    settings.TRUSTED_PROXIES = []

    client.get("/admin/login/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.66")

    assert request_lines(log_lines(), "request_finished")[-1]["ip"] == "198.51.100.7"


@pytest.mark.django_db
def test_forwarded_for_from_a_trusted_proxy_names_the_client(client, log_lines, settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]

    client.get("/admin/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.66, 10.0.0.9")

    assert request_lines(log_lines(), "request_finished")[-1]["ip"] == "203.0.113.66"


@pytest.mark.django_db
def test_forwarded_proto_is_only_believed_from_a_trusted_proxy(settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()

    untrusted = client.get("/admin/login/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_PROTO="https")
    trusted = client.get("/admin/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_PROTO="https")

    assert untrusted.status_code == 301  # still plain HTTP: redirected to https
    assert trusted.status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.core.urls")
def test_request_id_and_user_follow_a_task_queued_during_the_request(
    celery_worker, staff_client, staff_user, log_lines
):
    response = staff_client.get("/queue-ping/", headers={"X-Request-ID": "req-propagation-1"})

    result = AsyncResult(response.json()["task_id"]).get(timeout=10)
    assert result["request_id"] == "req-propagation-1"
    assert result["user_id"] == staff_user.pk
    task_line = request_lines(log_lines(), "ping")[-1]
    assert task_line["request_id"] == "req-propagation-1"
    assert task_line["task_id"] == response.json()["task_id"]


def test_the_context_is_empty_outside_a_request_and_task():
    assert context.current() == context.RequestContext()


def test_a_task_queued_outside_any_request_runs_with_an_empty_context(celery_worker):
    assert ping.delay().get(timeout=10)["request_id"] is None
