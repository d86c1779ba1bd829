"""POST /hooks/alertmanager/<name>/: Alertmanager's webhook (version 4) through the Django test client.

What Alertmanager sends here is what tests/hooks/test_alertmanager_e2e.py gets
from the real one; these tests cover what it rarely sends: retries, re-sends,
notifications out of order, bad tokens and bad bodies.
"""

import hashlib
import json
import uuid
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client

from apps.alerts.models import Alert, State
from apps.alerts.services import alert_resolve
from apps.hooks import alertmanager
from apps.hooks.models import AlertmanagerDelivery, AlertmanagerReceiver
from tests.metrics.test_export import samples, scrape
from tests.threads import in_threads

pytestmark = pytest.mark.django_db

URL = "/hooks/alertmanager/prod/"
STARTED = "2026-11-02T03:00:00.123456789Z"  # Alertmanager writes nanoseconds
ENDED = "2026-11-02T03:30:00Z"  # a resolved alert's endsAt
LATER = "2026-11-02T04:30:00Z"  # a new episode
NEVER = "0001-01-01T00:00:00Z"  # a firing alert's endsAt


def am_alert(fingerprint: str = "5ef77e6a0d9d3b1c", status: str = "firing", starts_at: str = STARTED,
             ends_at: str = ENDED, annotations: dict | None = None, **labels: str) -> dict[str, Any]:  # fmt: skip
    return {
        "status": status,
        "labels": {"alertname": "DiskFull", "instance": "db-1:9100", **labels},
        "annotations": {"summary": "Disk almost full on db-1"} if annotations is None else annotations,
        "startsAt": starts_at,
        "endsAt": NEVER if status == "firing" else ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict, group_key: str = '{}:{alertname="DiskFull"}') -> dict[str, Any]:
    alerts = alerts or (am_alert(),)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if any(alert["status"] == "firing" for alert in alerts) else "resolved",
        "receiver": "opsportal-prod",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.fixture
def prod() -> tuple[AlertmanagerReceiver, str]:
    receiver = AlertmanagerReceiver(name="prod", default_severity="error")
    return receiver, alertmanager.receiver_token_new(receiver)


@pytest.fixture
def am(prod) -> Client:
    """A client sending prod's token, as Alertmanager does."""
    return Client(headers={"authorization": f"Bearer {prod[1]}"})


def post(client: Client, body: Any, url: str = URL, **extra: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.generic("POST", url, data, content_type="application/json", **extra)


def nothing_stored() -> bool:
    return not AlertmanagerDelivery.objects.exists() and not Alert.objects.exists()


# ---------------------------------------------------------------- what a notification does


def test_a_firing_alert_fires_an_alert_keyed_by_its_fingerprint(am, prod):
    annotations = {"summary": "Disk almost full on db-1", "description": "95% used", "runbook_url": "http://wiki/disk"}

    response = post(am, notification(am_alert(annotations=annotations, severity="critical")))

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"fired": 1, "resolved": 0, "duplicates": 0, "stale": 0}
    alert = Alert.objects.get()
    assert (alert.source, alert.key, alert.state, alert.severity) == ("alertmanager", "5ef77e6a0d9d3b1c", "firing",
                                                                      "critical")  # fmt: skip
    assert alert.summary == "Disk almost full on db-1"
    assert alert.description == (
        "95% used\n\nrunbook_url: http://wiki/disk\nsource: http://prometheus:9090/graph?g0.expr=disk"
    )
    assert alert.labels == {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical",
                            "receiver": "prod"}  # fmt: skip
    receiver = AlertmanagerReceiver.objects.get()
    assert receiver.last_received_at is not None
    delivery = AlertmanagerDelivery.objects.get()
    assert delivery.group_key == hashlib.sha256(b'{}:{alertname="DiskFull"}').hexdigest()
    assert delivery.starts_at.isoformat() == "2026-11-02T03:00:00.123456+00:00"


def test_without_a_summary_the_alertname_is_the_summary(am):
    post(am, notification(am_alert(annotations={})))

    assert Alert.objects.get().summary == "DiskFull"


def test_a_resolved_alert_resolves_it(am):
    post(am, notification(am_alert()))

    response = post(am, notification(am_alert(status="resolved")))

    assert response.json() == {"fired": 0, "resolved": 1, "duplicates": 0, "stale": 0}
    assert Alert.objects.get().state == State.RESOLVED


def test_a_retried_notification_is_a_duplicate_that_changes_nothing(am):
    post(am, notification(am_alert("aaaa"), am_alert("bbbb")))
    before = list(Alert.objects.order_by("key").values("key", "fire_count", "last_fired_at"))

    response = post(am, notification(am_alert("bbbb"), am_alert("aaaa")))

    assert response.json() == {"fired": 0, "resolved": 0, "duplicates": 2, "stale": 0}
    assert list(Alert.objects.order_by("key").values("key", "fire_count", "last_fired_at")) == before
    assert AlertmanagerDelivery.objects.count() == 2


def test_a_repeat_interval_resend_does_not_reopen_an_alert_resolved_by_hand(am, fast_passwords, superuser):
    post(am, notification(am_alert()))
    alert_resolve(source="alertmanager", key="5ef77e6a0d9d3b1c", actor=superuser)

    response = post(am, notification(am_alert()))

    assert response.json()["duplicates"] == 1
    assert Alert.objects.get().state == State.RESOLVED


def test_a_firing_that_arrives_after_its_resolve_does_not_reopen_the_alert(am):
    post(am, notification(am_alert()))
    post(am, notification(am_alert(status="resolved")))

    # The same episode (startsAt), from another group of another route, late.
    response = post(am, notification(am_alert(), group_key="{}/{team=db}:{}"))

    assert response.json() == {"fired": 0, "resolved": 0, "duplicates": 0, "stale": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.episode) == (State.RESOLVED, 1)


def test_a_resolve_that_arrives_before_its_firing_keeps_the_alert_from_opening(am):
    response = post(am, notification(am_alert(status="resolved")))
    assert response.json()["resolved"] == 1 and not Alert.objects.exists()

    response = post(am, notification(am_alert()))

    assert response.json()["stale"] == 1
    assert not Alert.objects.exists()


def test_the_late_resolve_of_an_earlier_episode_leaves_the_new_one_firing(am):
    post(am, notification(am_alert(starts_at=STARTED)))
    post(am, notification(am_alert(starts_at=LATER), group_key="{}/{team=db}:{}"))

    response = post(am, notification(am_alert(status="resolved", starts_at=STARTED)))

    assert response.json()["stale"] == 1
    assert Alert.objects.get().state == State.FIRING


def test_the_resolve_of_an_episode_whose_start_alertmanager_moved_earlier_resolves_it(am):
    """An HA pair of Prometheus: Alertmanager keeps the earliest startsAt, so the resolve may carry an earlier one."""
    post(am, notification(am_alert(starts_at="2026-11-02T03:00:05Z")))

    response = post(am, notification(am_alert(status="resolved", starts_at=STARTED)))

    assert response.json()["resolved"] == 1
    assert Alert.objects.get().state == State.RESOLVED
    # And the firing, late from another route, does not reopen it.
    late = post(am, notification(am_alert(starts_at="2026-11-02T03:00:05Z"), group_key="{}/{team=db}:{}"))
    assert late.json()["stale"] == 1
    assert Alert.objects.get().state == State.RESOLVED


def test_a_new_episode_after_a_resolve_fires_the_alert_again(am):
    post(am, notification(am_alert(starts_at=STARTED)))
    post(am, notification(am_alert(status="resolved", starts_at=STARTED)))

    response = post(am, notification(am_alert(starts_at=LATER)))

    assert response.json()["fired"] == 1
    alert = Alert.objects.get()
    assert (alert.state, alert.episode) == (State.FIRING, 2)


def test_each_receiver_records_its_own_deliveries(am, prod):
    staging = AlertmanagerReceiver(name="staging")
    staging_client = Client(headers={"authorization": f"Bearer {alertmanager.receiver_token_new(staging)}"})

    post(am, notification(am_alert()))
    response = post(staging_client, notification(am_alert()), url="/hooks/alertmanager/staging/")

    assert response.json()["fired"] == 1
    assert AlertmanagerDelivery.objects.values("receiver__name").distinct().count() == 2
    assert Alert.objects.get().labels["receiver"] == "staging"


@pytest.mark.parametrize(
    ("label", "severity"),
    [("critical", "critical"), ("CRITICAL", "critical"), ("page", "critical"), ("error", "error"),
     ("major", "error"), ("high", "error"), ("warning", "warning"), ("warn", "warning"), ("info", "info"),
     ("none", "info"), ("low", "info"), ("p1", "error"), ("", "error"), (None, "error")],
)  # fmt: skip
def test_the_severity_label_is_mapped_else_the_receivers_default_applies(am, label, severity):
    labels = {} if label is None else {"severity": label}

    post(am, notification(am_alert(**labels)))

    assert Alert.objects.get().severity == severity  # prod's default is "error"


# ---------------------------------------------------------------- who may send


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", "Basic b3BhbTp4eHg=", "Token {token}", "Bearer {token}x",
     "Bearer {other}"],
)  # fmt: skip
def test_a_missing_or_wrong_token_is_401_and_stores_nothing(prod, authorization):
    other = alertmanager.receiver_token_new(AlertmanagerReceiver(name="other"))
    headers = {} if authorization is None else {"authorization": authorization.format(token=prod[1], other=other)}

    response = post(Client(headers=headers), notification())

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert prod[1] not in response.content.decode()
    assert nothing_stored()
    assert AlertmanagerReceiver.objects.get(name="prod").last_received_at is None


def test_the_token_is_accepted_whatever_the_schemes_case(prod):
    response = post(Client(headers={"authorization": f"bearer {prod[1]}"}), notification())

    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize("url", ["/hooks/alertmanager/nobody/", "/hooks/alertmanager/not a slug/"])
def test_an_unknown_receiver_is_404(am, url):
    response = post(am, notification(), url=url)

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert nothing_stored()


def test_a_disabled_receiver_is_404_even_with_its_token(am, prod):
    AlertmanagerReceiver.objects.filter(name="prod").update(enabled=False)

    response = post(am, notification())

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert nothing_stored()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_only_post_is_allowed(am, method):
    response = am.generic(method, URL)

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response["Allow"] == "POST"


def test_the_hook_needs_no_csrf_token(prod):
    client = Client(enforce_csrf_checks=True, headers={"authorization": f"Bearer {prod[1]}"})

    assert post(client, notification()).status_code == HTTPStatus.OK


# ---------------------------------------------------------------- what it must look like


def _without(key: str) -> dict:
    body = notification()
    del body[key]
    return body


def _alert_with(**changes: Any) -> dict:
    return notification({**am_alert(), **changes})


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({**notification(), "version": "3"}, "version: Value error, this hook reads webhook payload version 4"),
        ({**notification(), "version": 4}, "version"),
        (_without("groupKey"), "groupKey: Field required"),
        (_without("alerts"), "alerts: Field required"),
        ({**notification(), "status": "pending"}, "status"),
        ({**notification(), "alerts": {"0": am_alert()}}, "alerts: Input should be a valid list"),
        (_alert_with(status="pending"), "alerts.0.status"),
        (_alert_with(startsAt="2026-11-02T03:00:00"), "alerts.0.startsAt: Input should have timezone info"),
        (_alert_with(startsAt="yesterday"), "alerts.0.startsAt"),
        (_alert_with(startsAt="0001-01-01T00:00:00+01:00"), "alerts.0.startsAt: Value error, the time is out of range"),
        (_alert_with(fingerprint=""), "alerts.0.fingerprint"),
        (_alert_with(fingerprint="a" * 65), "alerts.0.fingerprint"),
        (_alert_with(fingerprint="../../etc"), "alerts.0.fingerprint"),
        (_alert_with(labels={"alertname": 5}), "alerts.0.labels.alertname: Input should be a valid string"),
        (_alert_with(labels={"bad name": "x"}), "alerts.0.labels: Value error, 'bad name' is not a label name"),
        (_alert_with(labels={f"l{n}": "x" for n in range(64)}), "alerts.0.labels: Value error, at most 63 labels"),
        (_alert_with(annotations=["summary"]), "alerts.0.annotations"),
        ([notification()], "body: Input should be a valid dictionary"),
        ("4", "body: Input should be a valid dictionary"),
    ],
)
def test_a_payload_that_is_not_alertmanagers_is_400_naming_what_is_wrong(am, body, named):
    response = post(am, body)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert named in response.json()["error"]
    assert nothing_stored()


def test_one_bad_alert_refuses_the_whole_notification(am):
    response = post(am, notification(am_alert("aaaa"), {**am_alert("bbbb"), "startsAt": "soon"}))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "alerts.1.startsAt" in response.json()["error"]
    assert nothing_stored()


def test_many_problems_are_summed_up(am):
    response = post(am, {"alerts": [{}]})  # 4 fields missing, and 4 of its alert's

    error = response.json()["error"]
    assert error.count("Field required") == 5 and error.endswith("(and 3 more)")


def test_fields_alertmanager_adds_later_are_ignored(am):
    body = notification({**am_alert(), "silencedBy": []})

    assert post(am, {**body, "newField": {"x": 1}}).status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "The body is not valid JSON."),
        (b"\xff\xfe", "The body is not valid JSON."),
        (b'{"version": NaN}', "The body is not valid JSON."),
        (b"[" * 40 + b"]" * 40, "The JSON is nested deeper than 32."),
        (json.dumps(notification(am_alert(annotations={"summary": "x", "deep": None}))).encode().replace(
            b'"deep": null', b'"deep": ' + b"[" * 33 + b"]" * 33), "The JSON is nested deeper than 32."),
    ],
)  # fmt: skip
def test_a_body_that_is_not_json_or_is_nested_too_deep_is_400(am, data, message):
    response = post(am, data)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"error": message}
    assert nothing_stored()


def test_a_body_over_one_mebibyte_is_413_from_its_content_length(am, settings):
    response = post(am, notification(), CONTENT_LENGTH=str(settings.HOOKS_MAX_BODY_BYTES + 1))

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert nothing_stored()


def test_a_real_body_over_one_mebibyte_is_413(am):
    padded = notification(am_alert(annotations={"summary": "x", "description": "x" * (1024 * 1024)}))

    response = post(am, padded)

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert nothing_stored()


# ---------------------------------------------------------------- rejections on /metrics


@pytest.fixture
def fresh_counters(settings) -> None:
    """The rejection counters in a cache namespace of this test's own (Redis is shared by the test processes)."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def rejected(hook: str = "alertmanager") -> dict[str, float]:
    found = samples(scrape(Client()))
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in found.items()
        if name == "opsportal_hooks_rejected_total" and dict(labels)["hook"] == hook
    }


def test_every_rejection_is_counted_on_metrics_by_reason(am, prod, fresh_counters, settings):
    assert set(rejected().values()) == {0.0}

    post(Client(), notification())  # unauthorized
    post(Client(headers={"authorization": "Bearer wrong"}), notification())  # unauthorized
    post(am, notification(), url="/hooks/alertmanager/nobody/")  # not_found
    post(am, {**notification(), "version": "3"})  # bad_request
    post(am, b"[" * 40 + b"]" * 40)  # bad_json
    post(am, notification(), CONTENT_LENGTH=str(settings.HOOKS_MAX_BODY_BYTES + 1))  # too_large
    am.get(URL)  # method
    post(am, notification())  # accepted: not counted

    assert rejected() == {"too_large": 1, "bad_json": 1, "unauthorized": 2, "not_found": 1, "bad_request": 1,
                          "unavailable": 0, "method": 1}  # fmt: skip


def test_a_rejection_is_logged_without_the_token_or_the_body(prod, log_lines):
    secret_body = notification(am_alert(annotations={"summary": "s3cr3t-annotation"}))

    post(Client(headers={"authorization": f"Bearer {prod[1]}x"}), secret_body)

    [line] = [line for line in log_lines() if line.get("event") == "hook_rejected"]
    assert (line["hook"], line["reason"], line["status"]) == ("alertmanager", "unauthorized", 401)
    assert prod[1] not in json.dumps(log_lines()) and "s3cr3t" not in json.dumps(log_lines())


# ---------------------------------------------------------------- concurrency (PostgreSQL)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_overlapping_alerts_fire_each_alert_once(prod):
    """Two Alertmanagers of an HA pair (or retries racing) sending the same alerts at once, in any order."""
    receiver = AlertmanagerReceiver.objects.get(name="prod")
    fingerprints = [f"{n:016x}" for n in range(8)]
    outcomes = []

    def deliver(thread: int, n: int) -> None:
        ordered = fingerprints if thread % 2 else fingerprints[::-1]
        parsed = alertmanager.Notification.model_validate(notification(*[am_alert(fp) for fp in ordered]))
        outcomes.append(alertmanager.notification_receive(receiver=receiver, notification=parsed))

    errors = in_threads(4, 3, deliver)

    assert errors == []
    assert sum(outcome.fired for outcome in outcomes) == len(fingerprints)
    assert sum(outcome.duplicates for outcome in outcomes) == len(fingerprints) * (4 * 3 - 1)
    assert sorted(Alert.objects.values_list("key", flat=True)) == fingerprints
    assert set(Alert.objects.values_list("fire_count", flat=True)) == {1}


def test_the_tick_prunes_deliveries_older_than_a_week_and_keeps_the_rest(prod):
    from datetime import timedelta

    from django.db.models.functions import Now

    from apps.hooks.models import AlertmanagerDelivery

    receiver_row = prod[0]

    def delivery(fingerprint: str) -> AlertmanagerDelivery:
        return AlertmanagerDelivery.objects.create(
            receiver=receiver_row, group_key="g" * 64, fingerprint=fingerprint, status="firing",
            starts_at="2026-01-01T00:00:00Z",
        )  # fmt: skip

    old, recent = delivery("old"), delivery("recent")
    AlertmanagerDelivery.objects.filter(pk=old.pk).update(received_at=Now() - timedelta(days=8))

    assert alertmanager.prune() == 1
    assert list(AlertmanagerDelivery.objects.values_list("fingerprint", flat=True)) == [recent.fingerprint]
