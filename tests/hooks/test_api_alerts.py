"""/api/v1/alerts/ as a client sees it: list, detail with timeline, fire, acknowledge, resolve; permissions; audit."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from apps.alerts import services
from apps.alerts.models import Alert, Silence, State
from apps.audit.models import AuditEvent
from apps.hooks.models import Scope
from tests.broadcasts import listen

pytestmark = pytest.mark.django_db
ALERTS = "/api/v1/alerts/"
JSON = "application/json"


def fire(key: str, severity: str = "critical", source: str = "health", **labels: str) -> Alert:
    return services.alert_fire(source=source, key=key, severity=severity, summary=f"{key} is failing", labels=labels)


def post(client, path: str, body: dict | None = None):
    return client.post(path, body if body is not None else {}, content_type=JSON)


def fields_at_fault(response) -> list[str]:
    assert response["Content-Type"] == "application/problem+json"
    return [error["field"] for error in response.json()["errors"]]


# ---------------------------------------------------------------- list


def test_the_list_filters_by_state_severity_source_and_labels(read_client, superuser):
    disk = fire("disk-full", env="prod", team="dba")
    fire("cpu-hot", "warning", env="prod")
    fire("web-down", "error", source="hooks", env="staging")
    services.alert_acknowledge(disk, actor=superuser)

    def keys(**query) -> list[str]:
        response = read_client.get(ALERTS, query)
        assert response.status_code == HTTPStatus.OK, response.content
        return [item["key"] for item in response.json()["items"]]

    assert keys() == ["web-down", "cpu-hot", "disk-full"]
    assert keys(state="acknowledged") == ["disk-full"]
    assert keys(severity="warning") == ["cpu-hot"]
    assert keys(source="hooks") == ["web-down"]
    assert keys(label=["env=prod"]) == ["cpu-hot", "disk-full"]
    assert keys(label=["env=prod", "team=dba"]) == ["disk-full"]


def test_the_list_is_paged_by_cursor_without_gaps_or_repeats(read_client):
    for number in range(5):
        fire(f"check-{number}")

    first = read_client.get(ALERTS, {"limit": 2}).json()
    fire("check-late")  # a row inserted meanwhile does not shift the pages
    second = read_client.get(ALERTS, {"limit": 2, "cursor": first["next"]}).json()
    third = read_client.get(ALERTS, {"limit": 2, "cursor": second["next"]}).json()

    pages = [[item["key"] for item in page["items"]] for page in (first, second, third)]
    assert pages == [["check-4", "check-3"], ["check-2", "check-1"], ["check-0"]]
    assert third["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [({"state": "burning"}, "state"), ({"label": "no-equals"}, "label.0"), ({"cursor": "abc"}, "cursor"),
     ({"limit": 0}, "limit"), ({"severity": "fatal"}, "severity")],
)  # fmt: skip
def test_a_bad_filter_is_a_400_naming_it(read_client, query, field):
    response = read_client.get(ALERTS, query)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert fields_at_fault(response) == [field]


# ---------------------------------------------------------------- detail


def test_the_detail_has_the_list_fields_the_people_and_the_timeline(write_client, superuser):
    alert = services.alert_fire(
        source="health", key="disk-full", severity="critical", summary="disk full", description="on db-1",
        labels={"host": "db-1"}, value=97.5,
    )  # fmt: skip
    now = timezone.now()  # saved as the admin saves it: it marks the alert silenced at once
    silence = Silence.objects.create(
        matchers=["key=disk-full"], starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1),
        comment="swap",
    )  # fmt: skip
    services.alert_acknowledge(alert, actor=superuser, comment="on it")

    detail = write_client.get(f"{ALERTS}{alert.pk}/").json()

    listed = write_client.get(ALERTS).json()["items"][0]
    assert {name: detail[name] for name in listed} == listed
    assert (detail["description"], detail["value"], detail["labels"]) == ("on db-1", 97.5, {"host": "db-1"})
    assert (detail["acknowledged_by"], detail["resolved_by"]) == ("alice", None)
    assert (detail["silenced"], detail["silenced_by"]) == (True, silence.pk)
    assert [(line["kind"], line["actor_name"], line["comment"]) for line in detail["timeline"]] == [
        ("fired", "", ""),
        ("unrouted", "", "No route matches and there is no default route."),
        ("silenced", "", "swap"),
        ("acknowledged", "alice", "on it"),
    ]
    assert detail["timeline"][0]["details"] == {"severity": "critical", "labels": {"host": "db-1"}}
    assert {line["episode"] for line in detail["timeline"]} == {1}


@pytest.mark.parametrize("path", ["999/", "abc/", "99999999999999999999999/", "0/"])
def test_an_unknown_alert_is_a_404_problem(read_client, path):
    response = read_client.get(f"{ALERTS}{path}")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/problem+json"


# ---------------------------------------------------------------- fire


def test_firing_creates_then_updates_then_begins_a_new_episode(write_client):
    body = {"source": "ci", "key": "deploy-web", "severity": "error", "summary": "deploy failed",
            "description": "step 3", "labels": {"service": "web"}, "value": {"exit": 2}}  # fmt: skip

    created = post(write_client, ALERTS, body)
    again = post(write_client, ALERTS, {**body, "summary": "deploy failed again"})
    alert = Alert.objects.get(source="ci", key="deploy-web")
    services.alert_resolve(source="ci", key="deploy-web")
    reborn = post(write_client, ALERTS, body)

    assert (created.status_code, again.status_code, reborn.status_code) == (201, 200, 201)
    assert created.json()["id"] == alert.pk and created.json()["labels"] == {"service": "web"}
    assert created.json()["value"] == {"exit": 2} and created.json()["description"] == "step 3"
    assert (again.json()["fire_count"], again.json()["summary"]) == (2, "deploy failed again")
    assert (reborn.json()["episode"], reborn.json()["state"]) == (2, State.FIRING)
    assert [line["kind"] for line in reborn.json()["timeline"]].count("refired") == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key": "   "}, "key"),
        ({"source": ""}, "source"),
        ({"source": "s" * 101}, "source"),
        ({"summary": " "}, "summary"),
        ({"summary": "s" * 501}, "summary"),
        ({"labels": {f"l{n}": "x" for n in range(65)}}, "labels"),
        ({"severity": "fatal"}, "severity"),
        ({"labels": {"9lives": "x"}}, "labels"),
        ({"labels": {"port": 5432}}, "labels.port"),
        ({"summary": None}, "summary"),
    ],
)
def test_a_bad_alert_is_a_400_naming_the_field_and_nothing_is_fired(write_client, change, field):
    body = {"source": "ci", "key": "deploy", "severity": "error", "summary": "deploy failed", **change}

    response = post(write_client, ALERTS, body)

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert fields_at_fault(response) == [field]
    assert not Alert.objects.exists()


def test_a_missing_field_is_named(write_client):
    response = post(write_client, ALERTS, {"source": "ci", "key": "deploy", "severity": "error"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert fields_at_fault(response) == ["summary"]


# ---------------------------------------------------------------- acknowledge and resolve


def test_acknowledging_records_who_and_why_and_a_second_time_is_a_409(write_client):
    alert = fire("disk-full")

    done = post(write_client, f"{ALERTS}{alert.pk}/acknowledge/", {"comment": "replacing it"})
    again = post(write_client, f"{ALERTS}{alert.pk}/acknowledge/")

    assert done.status_code == HTTPStatus.OK
    assert (done.json()["state"], done.json()["acknowledged_by"]) == (State.ACKNOWLEDGED, "alice")
    assert done.json()["timeline"][-1] | {"at": None} == {
        "kind": "acknowledged", "episode": 1, "at": None, "actor_name": "alice", "comment": "replacing it",
        "details": {},
    }  # fmt: skip
    assert again.status_code == HTTPStatus.CONFLICT
    assert again.json()["detail"] == "The alert is acknowledged: only a firing alert can be acknowledged."


def test_acknowledging_takes_an_empty_body(write_client):
    alert = fire("disk-full")

    response = write_client.post(f"{ALERTS}{alert.pk}/acknowledge/", b"", content_type=JSON)

    assert response.status_code == HTTPStatus.OK
    assert Alert.objects.get(pk=alert.pk).state == State.ACKNOWLEDGED


def test_resolving_records_who_and_why_and_a_second_time_is_a_409(write_client):
    alert = fire("disk-full")

    done = post(write_client, f"{ALERTS}{alert.pk}/resolve/", {"comment": "disk replaced"})
    again = post(write_client, f"{ALERTS}{alert.pk}/resolve/")
    acknowledge = post(write_client, f"{ALERTS}{alert.pk}/acknowledge/")

    assert done.status_code == HTTPStatus.OK
    assert (done.json()["state"], done.json()["resolved_by"]) == (State.RESOLVED, "alice")
    assert done.json()["timeline"][-1]["comment"] == "disk replaced"
    assert (again.status_code, acknowledge.status_code) == (HTTPStatus.CONFLICT, HTTPStatus.CONFLICT)
    assert again.json()["detail"] == "The alert is already resolved."


def test_a_comment_longer_than_the_timeline_keeps_is_a_400(write_client):
    alert = fire("disk-full")

    response = post(write_client, f"{ALERTS}{alert.pk}/acknowledge/", {"comment": "x" * 5001})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert fields_at_fault(response) == ["comment"]
    assert Alert.objects.get(pk=alert.pk).state == State.FIRING


@pytest.mark.parametrize("verb", ["acknowledge", "resolve"])
def test_acting_on_an_unknown_alert_is_a_404(write_client, verb):
    assert post(write_client, f"{ALERTS}4242/{verb}/").status_code == HTTPStatus.NOT_FOUND


# ---------------------------------------------------------------- permissions: the admin's


@pytest.mark.parametrize(
    ("permissions", "method", "path", "needed"),
    [
        ((), "get", "", "alerts.view_alert"),
        ((), "get", "{pk}/", "alerts.view_alert"),
        (("alerts.view_alert",), "post", "", "alerts.add_alert"),
        (("alerts.view_alert",), "post", "{pk}/acknowledge/", "alerts.change_alert"),
        (("alerts.view_alert", "alerts.add_alert"), "post", "{pk}/resolve/", "alerts.change_alert"),
    ],
)
def test_each_endpoint_needs_the_admins_permission(make_user, bearer, permissions, method, path, needed):
    alert = fire("disk-full")
    client = bearer(make_user("dave", *permissions), Scope.WRITE)
    body = {"source": "ci", "key": "k", "severity": "info", "summary": "s"} if path == "" else {}

    response = getattr(client, method)(ALERTS + path.format(pk=alert.pk), **({"data": body, "content_type": JSON}
                                                                             if method == "post" else {}))  # fmt: skip

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["detail"] == f"This needs the {needed} permission."
    assert Alert.objects.get(pk=alert.pk).state == State.FIRING and Alert.objects.count() == 1


def test_a_user_with_the_admins_permissions_can_act(make_user, bearer):
    alert = fire("disk-full")
    client = bearer(make_user("erin", "alerts.view_alert", "alerts.change_alert"), Scope.WRITE)

    assert client.get(f"{ALERTS}{alert.pk}/").status_code == HTTPStatus.OK
    assert post(client, f"{ALERTS}{alert.pk}/acknowledge/").status_code == HTTPStatus.OK
    assert post(client, f"{ALERTS}{alert.pk}/resolve/").status_code == HTTPStatus.OK


# ---------------------------------------------------------------- one path: audited, broadcast after commit


def test_acts_are_audited_as_the_tokens_user_with_the_requests_id(make_user, bearer):
    alert = fire("disk-full")
    client = bearer(make_user("frank", "alerts.view_alert", "alerts.change_alert"), Scope.WRITE)

    acked = client.post(f"{ALERTS}{alert.pk}/acknowledge/", {"comment": "mine"}, content_type=JSON,
                        headers={"x-request-id": "req-ack-0001"}, REMOTE_ADDR="192.0.2.7")  # fmt: skip
    resolved = post(client, f"{ALERTS}{alert.pk}/resolve/")

    events = AuditEvent.objects.filter(action__startswith="alert.").order_by("id")
    assert [(e.action, e.actor_username, e.resource_id) for e in events] == [
        ("alert.ack", "frank", str(alert.pk)),
        ("alert.resolve", "frank", str(alert.pk)),
    ]
    assert (events[0].request_id, events[0].ip, events[0].details["comment"]) == ("req-ack-0001", "192.0.2.7", "mine")
    assert acked["X-Request-ID"] == "req-ack-0001" and events[1].request_id == resolved["X-Request-ID"]


@pytest.mark.django_db(transaction=True)
def test_a_fired_alert_is_broadcast_once_committed(write_client):
    body = {"source": "ci", "key": "broadcast-me", "severity": "error", "summary": "deploy failed"}
    answers = []

    payloads, _ = listen(
        "alerts", lambda: answers.append(post(write_client, ALERTS, body)), where=lambda d: d["key"] == "broadcast-me"
    )

    assert answers[0].status_code == HTTPStatus.CREATED
    assert (payloads[0]["data"]["id"], payloads[0]["data"]["state"]) == (answers[0].json()["id"], "firing")
