"""/api/v1/silences/ as a client sees it: CRUD, expire, the admin's rules and permissions, the audit trail."""

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.utils import timezone

from apps.alerts import services
from apps.alerts.models import Alert, Silence
from apps.audit.models import AuditEvent
from apps.hooks.models import Scope

pytestmark = pytest.mark.django_db
SILENCES = "/api/v1/silences/"
JSON = "application/json"


def at(delta: timedelta) -> str:
    return (timezone.now() + delta).isoformat()


def body(**change) -> dict:
    return {"matchers": ["source=health", "key=~db-.*"], "ends_at": at(timedelta(hours=2)), "comment": "db upgrade",
            **change}  # fmt: skip


def create(client, **change):
    return client.post(SILENCES, body(**change), content_type=JSON)


def made(client, **change) -> dict:
    response = create(client, **change)
    assert response.status_code == HTTPStatus.CREATED, response.content
    return response.json()


def errors(response) -> list[tuple[str, str]]:
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response["Content-Type"] == "application/problem+json"
    return [(error["field"], error["message"]) for error in response.json()["errors"]]


# ---------------------------------------------------------------- create and read


def test_a_created_silence_starts_now_names_its_maker_and_silences_open_alerts_at_once(write_client):
    alert = services.alert_fire(source="health", key="db-primary", severity="critical", summary="db down")
    services.alert_fire(source="health", key="web", severity="critical", summary="web down")

    silence = made(write_client)

    assert silence["matchers"] == ["source=health", "key=~db-.*"]
    assert (silence["created_by"], silence["active"], silence["repeat"]) == ("alice", True, "")
    assert abs(timezone.now() - Silence.objects.get(pk=silence["id"]).starts_at) < timedelta(seconds=30)
    assert {a.key: a.silenced_by_id for a in Alert.objects.all()} == {"db-primary": silence["id"], "web": None}
    assert alert.transitions.filter(kind="silenced").count() == 1
    assert write_client.get(f"{SILENCES}{silence['id']}/").json() == silence


def test_creating_is_audited_as_the_tokens_user(make_user, bearer):
    client = bearer(make_user("dave", "alerts.add_silence"), Scope.WRITE)

    silence = made(client, comment="kernel upgrade")

    event = AuditEvent.objects.get(resource_type="alerts.silence", resource_id=str(silence["id"]))
    # model.create, where the admin's pages record admin.add: the request's channel is the API's.
    assert (event.action, event.actor_username, event.resource_repr) == ("model.create", "dave", "kernel upgrade")


def test_the_list_filters_active_silences_and_is_paged(write_client):
    past = made(write_client, starts_at=at(timedelta(hours=-3)), ends_at=at(timedelta(hours=-2)), comment="past")
    now = made(write_client, comment="now")
    later = made(write_client, starts_at=at(timedelta(hours=1)), ends_at=at(timedelta(hours=2)), comment="later")

    def ids(**query) -> list[int]:
        response = write_client.get(SILENCES, query)
        assert response.status_code == HTTPStatus.OK, response.content
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [later["id"], now["id"], past["id"]]
    assert ids(active="true") == [now["id"]]
    assert ids(active="false") == [later["id"], past["id"]]
    first = write_client.get(SILENCES, {"limit": 2}).json()
    rest = write_client.get(SILENCES, {"limit": 2, "cursor": first["next"]}).json()
    assert [item["comment"] for item in first["items"] + rest["items"]] == ["later", "now", "past"]
    assert rest["next"] is None


def test_a_repeating_silence_is_active_only_in_its_windows(write_client):
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=10)
    silence = made(write_client, starts_at=start.isoformat(), ends_at=(start + timedelta(hours=1)).isoformat(),
                   repeat="daily")  # fmt: skip

    assert silence["active"] is False
    with time_machine.travel(start + timedelta(days=1, minutes=5), tick=False):
        assert write_client.get(f"{SILENCES}{silence['id']}/").json()["active"] is True


# ---------------------------------------------------------------- the admin's rules


def test_a_bad_silence_is_refused_with_the_admins_messages_field_by_field(write_client, superuser_client):
    # What the schema allows and the form refuses: a regex that does not compile, an end before the start.
    response = create(write_client, matchers=["source=~("], ends_at=at(timedelta(hours=-1)))
    now = timezone.localtime()
    admin_page = superuser_client.post(
        "/admin/alerts/silence/add/",
        {"matchers": "source=~(", "comment": "db upgrade", "repeat": "", "starts_at_0": f"{now:%Y-%m-%d}",
         "starts_at_1": f"{now:%H:%M:%S}", "ends_at_0": "2000-01-01", "ends_at_1": "00:00:00"},
    )  # fmt: skip

    refused = errors(response)
    assert {field for field, _ in refused} == {"matchers", "ends_at"}
    admin_errors = admin_page.context["adminform"].form.errors
    assert sorted(refused) == sorted((field, text) for field, texts in admin_errors.items() for text in texts)
    assert not Silence.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"matchers": []}, "matchers"),
        ({"matchers": ["nonsense"]}, "matchers.0"),  # the schema's pattern: a name, then an operator
        ({"comment": ""}, "comment"),
        ({"comment": "  "}, "comment"),
        ({"ends_at": "2030-01-01T00:00:00"}, "ends_at"),  # no time zone: ambiguous, refused
        ({"ends_at": "tomorrow"}, "ends_at"),
        ({"repeat": "hourly"}, "repeat"),
        ({"repeat_until": "2030-01-01T00:00:00Z"}, "repeat_until"),  # only a repeating silence has one
        ({"repeat": "daily", "starts_at": at(timedelta(hours=1)), "repeat_until": at(timedelta(0))}, "repeat_until"),
        ({"repeat": "daily", "ends_at": None}, "ends_at"),
    ],
)
def test_each_bad_field_is_named(write_client, change, field):
    assert [name for name, _ in errors(create(write_client, **change))] == [field]


# ---------------------------------------------------------------- change, expire, delete


def test_a_patch_changes_only_what_it_names_and_is_checked_by_the_same_rules(write_client):
    silence = made(write_client)

    changed = write_client.patch(f"{SILENCES}{silence['id']}/", {"comment": "longer upgrade"}, content_type=JSON)
    refused = write_client.patch(f"{SILENCES}{silence['id']}/", {"repeat": "daily", "ends_at": at(timedelta(days=2))},
                                 content_type=JSON)  # fmt: skip

    assert changed.status_code == HTTPStatus.OK
    assert changed.json() == {**silence, "comment": "longer upgrade"}
    assert errors(refused) == [("ends_at", "A repeating window must be shorter than its period.")]
    assert Silence.objects.get(pk=silence["id"]).comment == "longer upgrade"
    update = AuditEvent.objects.get(action="model.update", resource_id=str(silence["id"]))
    assert update.changes["comment"] == ["db upgrade", "longer upgrade"] and update.actor_username == "alice"


@pytest.mark.parametrize("field", ["matchers", "starts_at", "ends_at", "repeat", "comment"])
def test_a_patch_cannot_empty_a_field_every_silence_has(write_client, field):
    silence = made(write_client)

    response = write_client.patch(f"{SILENCES}{silence['id']}/", {field: None}, content_type=JSON)

    assert [name for name, _ in errors(response)] == [field]
    assert write_client.get(f"{SILENCES}{silence['id']}/").json() == silence


def test_expiring_ends_a_silence_now_keeps_it_and_a_second_time_is_a_409(write_client):
    alert = services.alert_fire(source="health", key="db-1", severity="critical", summary="db down")
    silence = made(write_client)

    ended = write_client.post(f"{SILENCES}{silence['id']}/expire/")
    again = write_client.post(f"{SILENCES}{silence['id']}/expire/")

    assert ended.status_code == HTTPStatus.OK and ended.json()["active"] is False
    assert timezone.now() - timedelta(seconds=30) < Silence.objects.get(pk=silence["id"]).ends_at <= timezone.now()
    assert again.status_code == HTTPStatus.CONFLICT and again.json()["detail"] == "The silence is already over."
    assert Alert.objects.get(pk=alert.pk).silenced_by_id == silence["id"], "the record of who silenced it stays"


def test_expiring_a_repeating_silence_stops_its_repeats(write_client):
    start = timezone.now() - timedelta(minutes=5)
    silence = made(write_client, starts_at=start.isoformat(), ends_at=(start + timedelta(hours=1)).isoformat(),
                   repeat="weekly")  # fmt: skip

    write_client.post(f"{SILENCES}{silence['id']}/expire/")

    row = Silence.objects.get(pk=silence["id"])
    assert row.repeat_until is not None and row.repeat_until <= timezone.now()
    assert row.ends_at == start + timedelta(hours=1)


def test_deleting_removes_the_silence_and_is_audited(write_client):
    silence = made(write_client)

    deleted = write_client.delete(f"{SILENCES}{silence['id']}/")

    assert deleted.status_code == HTTPStatus.NO_CONTENT and deleted.content == b""
    assert write_client.get(f"{SILENCES}{silence['id']}/").status_code == HTTPStatus.NOT_FOUND
    assert AuditEvent.objects.get(action="model.delete", resource_id=str(silence["id"])).actor_username == "alice"


@pytest.mark.parametrize(
    ("method", "path"), [("get", "{}/"), ("patch", "{}/"), ("delete", "{}/"), ("post", "{}/expire/")]
)
def test_an_unknown_silence_is_a_404(write_client, method, path):
    response = getattr(write_client, method)(SILENCES + path.format(4242), {}, content_type=JSON)

    assert response.status_code == HTTPStatus.NOT_FOUND


# ---------------------------------------------------------------- permissions: the admin's


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("get", "", "alerts.view_silence"),
        ("get", "{id}/", "alerts.view_silence"),
        ("post", "", "alerts.add_silence"),
        ("patch", "{id}/", "alerts.change_silence"),
        ("post", "{id}/expire/", "alerts.change_silence"),
        ("delete", "{id}/", "alerts.delete_silence"),
    ],
)
def test_each_endpoint_needs_the_admins_permission(write_client, make_user, bearer, method, path, needed):
    silence = made(write_client)
    others = {"alerts.view_silence", "alerts.add_silence", "alerts.change_silence", "alerts.delete_silence"}
    client = bearer(make_user("erin", *sorted(others - {needed})), Scope.WRITE)

    response = getattr(client, method)(SILENCES + path.format(**silence), body(), content_type=JSON)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["detail"] == f"This needs the {needed} permission."
    assert Silence.objects.get().ends_at.isoformat()[:19] == silence["ends_at"][:19]
