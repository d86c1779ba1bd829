import datetime
import decimal
import uuid
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, transaction

from apps.audit.models import AppendOnlyError, AuditEvent
from apps.audit.services import MAX_TEXT, record
from apps.core import context

pytestmark = pytest.mark.django_db


def only(events: list[AuditEvent], action: str) -> AuditEvent:
    matching = [event for event in events if event.action == action]
    assert len(matching) == 1, [event.action for event in events]
    return matching[0]


def test_an_event_takes_actor_and_client_from_the_request_context(sealed_events, staff_user):
    ctx = context.RequestContext(request_id="req-ctx-000001", user_id=staff_user.pk, username="bob", ip="203.0.113.4",
                                 user_agent="curl/8", channel="web")  # fmt: skip
    with context.bound(ctx):
        record("alert.ack", resource=("alerts.alert", "42", "disk full"), details={"comment": "on it"})

    event = only(sealed_events(), "alert.ack")
    assert (event.actor_id, event.actor_username, event.ip) == (staff_user.pk, "bob", "203.0.113.4")
    assert (event.request_id, event.user_agent) == ("req-ctx-000001", "curl/8")
    assert (event.resource_type, event.resource_id, event.resource_repr) == ("alerts.alert", "42", "disk full")
    assert event.details == {"comment": "on it"}


def test_outside_a_request_the_actor_is_the_system_or_the_command_user(sealed_events):
    record("backup.run")
    with context.bound(context.for_command()):
        record("audit.prune")

    events = sealed_events()
    assert only(events, "backup.run").actor_username == "system"
    assert only(events, "audit.prune").actor_username.startswith("cli:")


def test_a_rolled_back_change_leaves_no_event(sealed_events):
    with pytest.raises(RuntimeError), transaction.atomic():
        User.objects.create_user("ghost")
        record("custom.action")
        raise RuntimeError("boom")

    assert not [e for e in sealed_events() if e.action == "custom.action" or e.resource_repr == "ghost"]


def test_awkward_details_are_converted_and_huge_ones_cut_never_raised(sealed_events, staff_user):
    class Unprintable:
        def __repr__(self) -> str:
            raise ValueError("no")

    record(
        "custom.awkward",
        details={
            "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "amount": decimal.Decimal("1.10"),
            "id": uuid.UUID(int=1),
            "raw": b"\x00\xff",
            "user": staff_user,
            "odd": Unprintable(),
            "nan": float("nan"),
            "long": "x" * (MAX_TEXT + 10),
            "api_token": "s3cret",
            "deep": {"a": [{"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": 1}}}}}}}}}}]},
        },
    )
    record("custom.huge", details={"rows": ["y" * 4000] * 100})

    events = sealed_events()
    details = only(events, "custom.awkward").details
    assert details["when"] == "2026-01-02T03:04:05+00:00"
    assert (details["amount"], details["id"]) == ("1.10", "00000000-0000-0000-0000-000000000001")
    assert details["raw"] == {"bytes": 2, "hex": "00ff"}
    assert details["user"] == {"type": "auth.user", "id": str(staff_user.pk), "text": "bob"}
    assert details["odd"] == "<Unprintable>"
    assert details["nan"] == "nan"
    assert details["long"].endswith("…[truncated 10 chars]")
    assert details["api_token"] == "***"
    assert "nested too deep" in str(details["deep"])
    huge = only(events, "custom.huge").details
    assert huge["truncated"] is True and huge["characters"] > 400_000


def test_the_orm_refuses_to_change_or_delete_events(sealed_events):
    record("custom.immutable")
    event = only(sealed_events(), "custom.immutable")

    event.action = "custom.forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])


def test_changes_to_registered_models_are_recorded_with_diffs_and_secrets_hidden(sealed_events):
    user = User.objects.create_user("dora", password="first-password-1")
    user.first_name = "Dora"
    user.save()
    user.set_password("second-password-2")
    user.save()
    user.delete()

    events = [e for e in sealed_events() if e.resource_type == "auth.user" and e.resource_repr == "dora"]
    assert [e.action for e in events] == ["model.create", "model.update", "auth.password_change", "model.delete"]
    assert events[0].changes["username"] == [None, "dora"]
    assert events[0].changes["password"] == [None, "***"]
    assert events[1].changes == {"first_name": ["", "Dora"]}
    assert events[2].changes == {"password": ["***", "***"]}
    assert "first-password" not in str([e.changes for e in events])


@pytest.mark.parametrize(
    "bulk",
    [
        lambda: User.objects.update(is_staff=True),
        lambda: User.objects.bulk_update([User(pk=User.objects.get().pk, email="e@x.org")], ["email"]),
        lambda: Group.objects.bulk_create([Group(name="a"), Group(name="b")]),
    ],
    ids=["queryset-update", "bulk-update", "bulk-create"],
)
def test_bulk_operations_are_recorded_too(sealed_events, bulk):
    User.objects.create_user("erin")
    before = len(sealed_events())

    bulk()

    new = sealed_events()[before:]
    assert new and all(e.action in ("model.update", "model.create") for e in new)


def test_raw_sql_is_recorded_as_well(sealed_events):
    group = Group.objects.create(name="oncall")
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "auth_group" SET "name" = %s WHERE "id" = %s', ["pagers", group.pk])

    event = sealed_events()[-1]
    assert (event.action, event.changes) == ("model.update", {"name": ["oncall", "pagers"]})


def test_a_deleted_users_events_keep_their_actor(sealed_events, staff_user):
    record("custom.before_deletion", actor=staff_user)
    user_id = staff_user.pk
    staff_user.delete()

    event = only(sealed_events(), "custom.before_deletion")
    assert (event.actor_id, event.actor_username) == (user_id, "bob")


def test_admin_changes_are_recorded_with_who_where_and_what(client, superuser, sealed_events):
    client.force_login(superuser)
    target = User.objects.create_user("frank", email="frank@example.org")
    url = f"/admin/auth/user/{target.pk}/change/"
    page = client.get(url)
    form = {k: v for k, v in page.context["adminform"].form.initial.items() if v is not None}
    form.update(username="frank", email="frank@ops.example.org", date_joined_0="2026-01-01",
                date_joined_1="00:00:00", groups=[], user_permissions=[])  # fmt: skip

    response = client.post(url, form, REMOTE_ADDR="198.51.100.20", headers={"X-Request-ID": "req-admin-0001"})

    assert response.status_code == HTTPStatus.FOUND, response.content[:2000]
    event = only(sealed_events(), "admin.change")
    assert (event.actor_username, event.ip, event.request_id) == ("alice", "198.51.100.20", "req-admin-0001")
    assert event.changes["email"] == ["frank@example.org", "frank@ops.example.org"]
    assert event.resource_repr == "frank"
