"""Signed generic events: a verified delivery is stored once per webhook-id and fires, resolves or is only
stored as the endpoint's mapping says; what cannot be mapped is refused whole, naming what is missing."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from apps.alerts.models import Alert, State
from apps.hooks import events
from apps.hooks.models import WebhookEndpoint, WebhookMessage
from tests.hooks.senders import body_of, deliver, rejected, send, signed_headers

pytestmark = pytest.mark.django_db

MAPPING = {
    "fire": ["incident.opened"],
    "resolve": ["incident.closed"],
    "key": "data.id",
    "summary": "data.title",
    "severity": "data.severity",
    "severities": {"P1": "critical"},
    "description": {"path": "data.url", "default": "no link"},
    "labels": {"service": "data.service", "env": {"default": "prod"}, "team": "data.team"},
}
OPENED = {
    "type": "incident.opened",
    "data": {"id": "db-1", "title": "Database down", "severity": "P1", "service": "db", "url": "https://x/1"},
}
CLOSED = {"type": "incident.closed", "data": {"id": "db-1"}}


@pytest.fixture
def endpoint(make_endpoint) -> WebhookEndpoint:
    return make_endpoint(name="incidents", mapping=MAPPING)


def test_a_fire_event_fires_the_mapped_alert(client, endpoint):
    response = deliver(client, endpoint, OPENED, message_id="msg_open")

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"id": "msg_open", "outcome": "fired", "duplicate": False}
    alert = Alert.objects.get()
    assert (alert.source, alert.key, alert.state) == ("events:incidents", "db-1", State.FIRING)
    assert (alert.severity, alert.summary, alert.description) == ("critical", "Database down", "https://x/1")
    assert alert.labels == {"service": "db", "env": "prod"}  # no data.team in the event: no label
    message = WebhookMessage.objects.get()
    assert (message.message_id, message.event_type, message.outcome) == ("msg_open", "incident.opened", "fired")
    assert (message.alert_source, message.alert_key, message.payload) == ("events:incidents", "db-1", OPENED)
    endpoint.refresh_from_db()
    assert endpoint.last_received_at is not None


def test_a_resolve_event_resolves_it(client, endpoint):
    deliver(client, endpoint, OPENED)
    response = deliver(client, endpoint, CLOSED)

    assert response.json()["outcome"] == "resolved"
    assert Alert.objects.get().state == State.RESOLVED
    assert list(WebhookMessage.objects.order_by("pk").values_list("outcome", flat=True)) == ["fired", "resolved"]


def test_an_event_of_another_type_is_only_stored(client, endpoint):
    response = deliver(client, endpoint, {"type": "incident.commented", "data": {"id": "db-1"}})

    assert response.status_code == HTTPStatus.OK and response.json()["outcome"] == "stored"
    assert not Alert.objects.exists()
    message = WebhookMessage.objects.get()
    assert (message.event_type, message.alert_source, message.alert_key) == ("incident.commented", "", "")


def test_a_payload_that_is_not_an_object_is_stored(client, endpoint):
    assert deliver(client, endpoint, [1, 2, 3]).json()["outcome"] == "stored"


def test_a_replay_answers_2xx_and_creates_nothing(client, endpoint):
    body = body_of(OPENED)
    headers = signed_headers(endpoint.secret, body, message_id="msg_once")
    assert send(client, endpoint.name, body, headers).status_code == HTTPStatus.OK
    fired = Alert.objects.get()

    response = send(client, endpoint.name, body, headers)

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"id": "msg_once", "outcome": "fired", "duplicate": True}
    again = Alert.objects.get()
    assert (again.fire_count, again.last_fired_at) == (1, fired.last_fired_at)  # alert_fire was not called again
    assert again.transitions.count() == fired.transitions.count()
    assert WebhookMessage.objects.count() == 1


def test_a_replay_is_still_a_2xx_after_the_mapping_changed_so_that_it_no_longer_maps(client, endpoint):
    body = body_of(OPENED)
    headers = signed_headers(endpoint.secret, body, message_id="msg_before")
    assert send(client, endpoint.name, body, headers).status_code == HTTPStatus.OK
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(mapping={**MAPPING, "key": "data.ref"})  # no data.ref

    response = send(client, endpoint.name, body, headers)

    assert (response.status_code, response.json()["duplicate"]) == (HTTPStatus.OK, True)
    assert WebhookMessage.objects.count() == 1


def test_the_endpoints_last_received_time_is_written_once_a_minute(client, endpoint):
    deliver(client, endpoint, OPENED)
    first = WebhookEndpoint.objects.get(pk=endpoint.pk).last_received_at
    deliver(client, endpoint, CLOSED)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).last_received_at == first

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_received_at=Now() - timedelta(seconds=61))
    deliver(client, endpoint, OPENED)

    assert WebhookEndpoint.objects.get(pk=endpoint.pk).last_received_at > first


def test_the_same_id_at_another_endpoint_is_another_event(client, endpoint, make_endpoint):
    other = make_endpoint(name="other", mapping=MAPPING)
    deliver(client, endpoint, OPENED, message_id="msg_1")
    response = deliver(client, other, OPENED, message_id="msg_1")
    assert response.json()["duplicate"] is False
    assert sorted(Alert.objects.values_list("source", flat=True)) == ["events:incidents", "events:other"]


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"type": "incident.opened", "data": {"title": "No id"}}, "key: the event has no data.id"),
        ({"type": "incident.opened", "data": {"id": "x", "title": {"a": 1}}}, "summary: the event has no data.title"),
        ({"type": "incident.opened", "data": {"id": "x", "title": "t", "severity": "P9"}}, "severity: 'P9'"),
        ({"type": "incident.closed", "data": {}}, "key: the event has no data.id"),
        ({"type": "incident.opened", "data": {"id": "x" * 201, "title": "t"}}, "key: data.id is longer than 200"),
    ],
)
def test_an_event_its_type_cannot_use_is_refused_naming_the_member_and_nothing_is_stored(
    client, endpoint, event, named
):
    response = deliver(client, endpoint, event)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert named in response.json()["error"]
    assert not WebhookMessage.objects.exists() and not Alert.objects.exists()


def test_a_refused_event_is_taken_when_the_sender_retries_after_the_mapping_is_fixed(client, endpoint):
    event = {"type": "incident.opened", "data": {"ref": "db-2", "title": "Disk full"}}
    body = body_of(event)
    headers = signed_headers(endpoint.secret, body, message_id="msg_retry")
    assert send(client, endpoint.name, body, headers).status_code == HTTPStatus.BAD_REQUEST

    endpoint.mapping = {**MAPPING, "key": "data.ref"}
    endpoint.save()
    response = send(client, endpoint.name, body, headers)  # the sender's retry: same id, same signature

    assert response.status_code == HTTPStatus.OK and response.json()["duplicate"] is False
    assert Alert.objects.get().key == "db-2"


def test_a_mapping_broken_behind_the_admins_back_is_a_400_that_says_so(client, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(mapping={"fire": "incident.opened"})
    response = deliver(client, endpoint, OPENED)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"].startswith("the endpoint's mapping is invalid (fix it in the admin): fire:")


def test_an_endpoint_named_too_long_for_an_alert_source_refuses_fires_but_stores_the_rest(client, make_endpoint):
    endpoint = make_endpoint(name="n" * 100, mapping=MAPPING)  # the admin allows 93 characters
    response = deliver(client, endpoint, OPENED)
    assert response.status_code == HTTPStatus.BAD_REQUEST and "at most 93 characters" in response.json()["error"]
    assert deliver(client, endpoint, {"type": "deploy.done"}).json()["outcome"] == "stored"


def test_without_a_mapping_every_event_is_stored(client, make_endpoint):
    endpoint = make_endpoint(name="audit-trail", mapping={})
    assert deliver(client, endpoint, OPENED).json()["outcome"] == "stored"
    assert not Alert.objects.exists()


def test_a_missing_severity_fires_as_a_warning(client, make_endpoint):
    endpoint = make_endpoint(mapping={"fire": ["incident.opened"], "summary": "data.title"})
    deliver(client, endpoint, {"type": "incident.opened", "data": {"id": "a", "title": "t"}})
    assert Alert.objects.get().severity == "warning"


def test_a_signed_body_too_deep_is_refused_as_bad_json(client, endpoint):
    before = rejected(client, "bad_json")
    body = b"[" * 40 + b"]" * 40
    response = send(client, endpoint.name, body, signed_headers(endpoint.secret, body))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not WebhookMessage.objects.exists()
    assert rejected(client, "bad_json") == before + 1


def test_a_body_over_one_mebibyte_is_refused_with_413(client, endpoint):
    before = rejected(client, "too_large")
    body = body_of({"type": "x", "padding": "x" * (1024 * 1024)})
    response = send(client, endpoint.name, body, signed_headers(endpoint.secret, body))
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert not WebhookMessage.objects.exists()
    assert rejected(client, "too_large") == before + 1


def test_an_unknown_or_disabled_endpoint_is_404(client, endpoint, make_endpoint):
    disabled = make_endpoint(name="off", enabled=False)
    before = rejected(client, "not_found")
    assert deliver(client, disabled, OPENED).status_code == HTTPStatus.NOT_FOUND
    response = send(client, "nobody", body_of(OPENED), signed_headers(endpoint.secret, body_of(OPENED)))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert rejected(client, "not_found") == before + 2
    assert not WebhookMessage.objects.exists()


def test_only_post_is_allowed(client, endpoint):
    response = client.get("/hooks/events/incidents/")
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED and response["Allow"] == "POST"


def test_the_url_works_without_its_trailing_slash(client, endpoint):
    body = body_of(OPENED)
    response = client.post(
        "/hooks/events/incidents", data=body, content_type="application/json",
        headers=signed_headers(endpoint.secret, body),
    )  # fmt: skip
    assert response.status_code == HTTPStatus.OK


def test_the_hook_is_csrf_exempt_for_a_client_that_enforces_csrf(endpoint):
    from django.test import Client

    body = body_of(OPENED)
    response = send(Client(enforce_csrf_checks=True), endpoint.name, body, signed_headers(endpoint.secret, body))
    assert response.status_code == HTTPStatus.OK


# ---------------------------------------------------------------- prune


def aged(endpoint: WebhookEndpoint, message_id: str, seconds: int) -> WebhookMessage:
    message = WebhookMessage.objects.create(
        endpoint=endpoint, message_id=message_id, sent_at=endpoint.created_at, payload={}, outcome="stored"
    )
    WebhookMessage.objects.filter(pk=message.pk).update(received_at=Now() - timedelta(seconds=seconds))
    return message


def test_prune_deletes_messages_older_than_asked(endpoint):
    aged(endpoint, "fresh", 60)
    aged(endpoint, "old", 3 * 86400)
    assert events.prune(older_than=timedelta(days=1)) == 1
    assert list(WebhookMessage.objects.values_list("message_id", flat=True)) == ["fresh"]


def test_prune_keeps_ids_twice_the_tolerance_whatever_it_is_asked(endpoint, settings):
    settings.HOOKS_TIMESTAMP_TOLERANCE_SECONDS = 300
    aged(endpoint, "within", 590)
    aged(endpoint, "beyond", 610)
    assert events.prune(older_than=timedelta(0)) == 1
    assert list(WebhookMessage.objects.values_list("message_id", flat=True)) == ["within"]


def test_a_pruned_id_delivered_again_within_tolerance_is_still_a_replay(client, endpoint):
    body = body_of(OPENED)
    headers = signed_headers(endpoint.secret, body, message_id="msg_kept")
    send(client, endpoint.name, body, headers)
    events.prune(older_than=timedelta(0))
    assert send(client, endpoint.name, body, headers).json()["duplicate"] is True
    assert Alert.objects.get().fire_count == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_id_delivered_twice_at_once_fires_once(make_endpoint):
    endpoint = make_endpoint(mapping=MAPPING)
    start = threading.Barrier(2)

    def receive() -> bool:
        try:
            start.wait(timeout=10)
            return events.event_receive(endpoint=endpoint, message_id="msg_race", sent_at=timezone.now(),
                                        payload=OPENED).duplicate  # fmt: skip
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        duplicates = sorted(pool.map(lambda _: receive(), range(2)))

    assert duplicates == [False, True]
    assert WebhookMessage.objects.count() == 1
    assert Alert.objects.get().fire_count == 1
