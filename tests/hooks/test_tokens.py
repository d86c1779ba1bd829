"""API tokens: stored hashed, scoped, expiring, revocable, their use recorded (not on every request), every creation
and revocation audited; made and revoked in the admin and by `manage.py api token`."""

import io
import json
from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core import context
from apps.hooks import tokens
from apps.hooks.models import ApiToken, Scope
from tests.services import manage, subprocess_env

pytestmark = pytest.mark.django_db
ALERTS = "/api/v1/alerts/"
FIRE = {"source": "ci", "key": "deploy", "severity": "error", "summary": "deploy failed"}
TOKENS = "/admin/hooks/apitoken/"


def client_of(token: str, ip: str = "127.0.0.1") -> Client:
    return Client(headers={"authorization": f"Bearer {token}"}, REMOTE_ADDR=ip)


def token_events(**lookup) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(resource_type="hooks.apitoken", **lookup).order_by("id"))


# ---------------------------------------------------------------- storage and scope


def test_only_the_digest_is_stored_never_the_token(superuser):
    row, token = tokens.token_create(user=superuser, name="ci", scope=Scope.READ)

    stored = ApiToken.objects.filter(pk=row.pk).values().get()
    assert token.startswith("opsp_") and len(token) == 48
    assert all(token not in str(value) for value in stored.values())
    assert stored["digest"] == tokens.digest(token) and token.startswith(stored["prefix"])


def test_a_read_token_reads_and_a_write_token_also_writes(superuser, make_token):
    reader, writer = client_of(make_token(superuser, Scope.READ)), client_of(make_token(superuser, Scope.WRITE))

    assert reader.get(ALERTS).status_code == HTTPStatus.OK
    assert reader.post(ALERTS, FIRE, content_type="application/json").status_code == HTTPStatus.FORBIDDEN
    assert writer.get(ALERTS).status_code == HTTPStatus.OK
    assert writer.post(ALERTS, FIRE, content_type="application/json").status_code == HTTPStatus.CREATED


# ---------------------------------------------------------------- when a token stops working


def test_a_token_works_until_it_expires(superuser, make_token):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        client = client_of(make_token(superuser, expires_in=timedelta(hours=1)))
        clock.shift(timedelta(minutes=59))
        before = client.get(ALERTS).status_code
        clock.shift(timedelta(minutes=2))
        after = client.get(ALERTS).status_code

    assert (before, after) == (HTTPStatus.OK, HTTPStatus.UNAUTHORIZED)


def test_a_revoked_token_is_refused_at_once(superuser):
    row, token = tokens.token_create(user=superuser, name="ci")
    client = client_of(token)
    assert client.get(ALERTS).status_code == HTTPStatus.OK

    assert tokens.token_revoke(row) is True
    assert client.get(ALERTS).status_code == HTTPStatus.UNAUTHORIZED
    assert tokens.token_revoke(row) is False, "revoking twice changes nothing"


def test_the_token_of_a_deactivated_user_is_refused(superuser, make_token):
    client = client_of(make_token(superuser))
    superuser.is_active = False
    superuser.save(update_fields=["is_active"])

    assert client.get(ALERTS).status_code == HTTPStatus.UNAUTHORIZED


def test_a_token_cannot_be_made_for_a_deactivated_user(outsider):
    outsider.is_active = False
    outsider.save(update_fields=["is_active"])

    with pytest.raises(tokens.TokenError, match="inactive"):
        tokens.token_create(user=outsider, name="ci")


# ---------------------------------------------------------------- use is recorded, not on every request


def test_use_is_recorded_with_the_address_at_most_once_a_minute_per_address(superuser):
    row, token = tokens.token_create(user=superuser, name="ci")
    start = timezone.now().replace(microsecond=0)

    def use(ip: str) -> tuple[int, ApiToken]:
        with CaptureQueriesContext(connection) as queries:
            assert client_of(token, ip).get(ALERTS).status_code == HTTPStatus.OK
        writes = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "hooks_apitoken" in q["sql"]]
        return len(writes), ApiToken.objects.get(pk=row.pk)

    with time_machine.travel(start, tick=False) as clock:
        first = use("192.0.2.1")
        clock.shift(timedelta(seconds=30))
        same_again = use("192.0.2.1")
        elsewhere = use("192.0.2.2")
        clock.shift(timedelta(seconds=61))
        later = use("192.0.2.2")

    assert first[0] == 1 and (first[1].last_used_at, first[1].last_used_ip) == (start, "192.0.2.1")
    assert same_again[0] == 0 and same_again[1].last_used_at == start
    assert elsewhere[0] == 1 and elsewhere[1].last_used_ip == "192.0.2.2"
    assert later[0] == 1 and later[1].last_used_at == start + timedelta(seconds=91)
    assert token_events(action__in=["model.update", "admin.change"]) == [], "use is bookkeeping, not audited"


# ---------------------------------------------------------------- the admin


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def create_in_admin(client: Client, **fields: str):
    return client.post(f"{TOKENS}add/", {"name": "grafana", "scope": "read", "lifetime": "90d", **fields})


def test_the_admin_makes_a_token_and_shows_it_once_on_a_page_of_its_own(admin_client, superuser, outsider):
    page = create_in_admin(admin_client, user=str(outsider.pk), scope="write")

    assert page.status_code == HTTPStatus.OK
    row = ApiToken.objects.get()
    token = page.context["token"]
    assert tokens.digest(token) == row.digest and page.content.decode().count(token) == 1
    assert '<label for="api-token">Token</label>' in page.content.decode()  # the field's, the token's only place
    assert "no-store" in page["Cache-Control"]
    assert (row.name, row.user, row.scope, row.created_by) == ("grafana", outsider, "write", superuser)
    assert timedelta(days=89) < row.expires_at - timezone.now() <= timedelta(days=90)
    # Nowhere else: not in a message, the session or a cookie, and not on any later page.
    assert not [str(message) for message in get_messages(page.wsgi_request)]
    assert all(token not in str(value) for value in admin_client.session.values())
    assert all(token not in morsel.value for morsel in admin_client.cookies.values())
    assert token not in admin_client.get(TOKENS).content.decode()
    assert token not in admin_client.get(f"{TOKENS}{row.pk}/change/").content.decode()


def test_a_token_made_in_the_admin_works_and_never_expires_when_asked(admin_client, superuser):
    page = create_in_admin(admin_client, user=str(superuser.pk), lifetime="never")

    assert ApiToken.objects.get().expires_at is None
    assert client_of(page.context["token"]).get(ALERTS).status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("fields", "field"), [({"name": " "}, "name"), ({"scope": "admin"}, "scope"), ({"lifetime": "5y"}, "lifetime")]
)
def test_the_admins_form_refuses_bad_input_and_makes_nothing(admin_client, superuser, fields, field):
    page = create_in_admin(admin_client, user=str(superuser.pk), **fields)

    assert page.status_code == HTTPStatus.OK and field in page.context["form"].errors
    assert "token" not in page.context and not ApiToken.objects.exists()


def test_the_admin_offers_only_active_users(admin_client, outsider):
    outsider.is_active = False
    outsider.save(update_fields=["is_active"])

    page = create_in_admin(admin_client, user=str(outsider.pk))

    assert "user" in page.context["form"].errors and not ApiToken.objects.exists()


def test_a_tokens_page_is_read_only_with_a_revoke_button(admin_client, superuser):
    row, token = tokens.token_create(user=superuser, name="ci", scope=Scope.WRITE)

    page = admin_client.get(f"{TOKENS}{row.pk}/change/")
    html = page.content.decode()
    edited = admin_client.post(f"{TOKENS}{row.pk}/change/", {"name": "renamed", "scope": "read"})
    wrong_method = admin_client.get(f"{TOKENS}{row.pk}/revoke/")
    revoked = admin_client.post(f"{TOKENS}{row.pk}/revoke/", follow=True)

    assert page.status_code == HTTPStatus.OK and 'name="name"' not in html
    assert f'action="{TOKENS}{row.pk}/revoke/"' in html
    assert edited.status_code == HTTPStatus.FORBIDDEN and ApiToken.objects.get().name == "ci"
    assert wrong_method.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert revoked.status_code == HTTPStatus.OK and ApiToken.objects.get().revoked_at is not None
    assert [str(m) for m in get_messages(revoked.wsgi_request)] == [f"Token {row} revoked: it no longer works."]
    assert client_of(token).get(ALERTS).status_code == HTTPStatus.UNAUTHORIZED
    assert f'action="{TOKENS}{row.pk}/revoke/"' not in admin_client.get(f"{TOKENS}{row.pk}/change/").content.decode()
    assert admin_client.post(f"{TOKENS}999/revoke/").status_code == HTTPStatus.NOT_FOUND


def test_the_list_shows_status_and_use_filters_and_revokes_in_bulk(admin_client, superuser, outsider):
    active, _ = tokens.token_create(user=superuser, name="grafana")
    old, _ = tokens.token_create(user=outsider, name="old-ci", scope=Scope.WRITE)
    ApiToken.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    ApiToken.objects.filter(pk=active.pk).update(last_used_at=timezone.now(), last_used_ip="192.0.2.9")

    def listed(**query: str) -> list[str]:
        return [token.name for token in admin_client.get(TOKENS, query).context["cl"].result_list]

    html = admin_client.get(TOKENS).content.decode()
    assert "192.0.2.9" in html and active.prefix in html
    assert listed(status="active") == ["grafana"]
    assert listed(status="expired") == ["old-ci"]
    assert listed(q="old") == ["old-ci"] and listed(scope__exact="write") == ["old-ci"]

    acted = admin_client.post(TOKENS, {"action": "revoke", "_selected_action": [active.pk, old.pk]}, follow=True)

    assert [str(m) for m in get_messages(acted.wsgi_request)] == ["2 revoked."]
    assert listed(status="revoked") == ["old-ci", "grafana"]
    assert ApiToken.objects.count() == 2, "revoked, never deleted"


def test_only_staff_with_the_token_permissions_see_make_or_revoke_tokens(make_user, superuser):
    row, _ = tokens.token_create(user=superuser, name="ci")

    def staff(name: str, *permissions: str) -> Client:
        client = Client()
        client.force_login(make_user(name, *permissions, is_staff=True))
        return client

    nobody, viewer = staff("henry"), staff("iris", "hooks.view_apitoken")
    maker, revoker = staff("jack", "hooks.view_apitoken", "hooks.add_apitoken"), staff("kate", "hooks.change_apitoken")

    assert nobody.get(TOKENS).status_code == HTTPStatus.FORBIDDEN
    assert viewer.get(TOKENS).status_code == HTTPStatus.OK
    assert viewer.get(f"{TOKENS}add/").status_code == HTTPStatus.FORBIDDEN
    assert viewer.post(f"{TOKENS}{row.pk}/revoke/").status_code == HTTPStatus.FORBIDDEN
    assert create_in_admin(viewer, user=str(superuser.pk)).status_code == HTTPStatus.FORBIDDEN
    assert create_in_admin(maker, user=str(superuser.pk)).status_code == HTTPStatus.OK
    assert ApiToken.objects.count() == 2 and ApiToken.objects.get(pk=row.pk).revoked_at is None
    assert revoker.post(f"{TOKENS}{row.pk}/revoke/").status_code == HTTPStatus.FOUND
    assert ApiToken.objects.get(pk=row.pk).revoked_at is not None


def test_making_and_revoking_in_the_admin_are_audited_as_the_person_without_the_secret(admin_client, outsider):
    page = create_in_admin(admin_client, user=str(outsider.pk))
    row = ApiToken.objects.get()
    client_of(page.context["token"]).get(ALERTS)
    admin_client.post(f"{TOKENS}{row.pk}/revoke/")

    made, revoked = token_events()
    assert (made.action, made.actor_username, made.resource_id) == ("admin.add", "alice", str(row.pk))
    assert made.changes["digest"] == [None, "***"] and made.changes["name"] == [None, "grafana"]
    assert (revoked.action, revoked.actor_username) == ("admin.change", "alice")
    assert list(revoked.changes) == ["revoked_at"]


# ---------------------------------------------------------------- manage.py api token


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("api", "token", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_command_creates_a_token_printed_once_on_stdout(superuser):
    err = io.StringIO()
    out = io.StringIO()
    call_command("api", "token", "create", "--user", "alice", "--scope", "read", stdout=out, stderr=err)

    token = out.getvalue().strip()
    row = ApiToken.objects.get()
    assert tokens.digest(token) == row.digest and (row.name, row.scope) == ("cli-alice", "read")
    assert token not in err.getvalue() and "Shown only now" in err.getvalue()
    assert timedelta(days=89) < row.expires_at - timezone.now() <= timedelta(days=90)
    assert client_of(token).get(ALERTS).status_code == HTTPStatus.OK


@pytest.mark.parametrize(("expires", "days"), [("30d", 30), ("1y", 365), ("12h", 0.5), ("never", None)])
def test_the_command_takes_a_lifetime(superuser, expires, days):
    made = json.loads(run("create", "--user", "alice", "--scope", "write", "--expires", expires, "--json"))

    row = ApiToken.objects.get(pk=made["id"])
    assert tokens.digest(made["token"]) == row.digest and made["scope"] == "write"
    if days is None:
        assert made["expires_at"] is None
    else:
        assert abs(row.expires_at - timezone.now() - timedelta(days=days)) < timedelta(minutes=1)


def test_the_command_lists_and_revokes_by_id_prefix_or_the_token_itself(superuser, outsider):
    first = json.loads(run("create", "--user", "alice", "--scope", "read", "--name", "first", "--json"))
    second = json.loads(run("create", "--user", "charlie", "--scope", "read", "--name", "second", "--json"))
    third = json.loads(run("create", "--user", "charlie", "--scope", "write", "--name", "third", "--json"))

    assert [t["name"] for t in json.loads(run("list", "--json"))] == ["first", "second", "third"]
    assert [t["name"] for t in json.loads(run("list", "--user", "charlie", "--json"))] == ["second", "third"]
    assert "token" not in json.loads(run("list", "--json"))[0]
    assert json.loads(run("revoke", str(first["id"]), "--json")) == {"id": first["id"], "revoked": True}
    assert run("revoke", second["prefix"]) == f"Token {second['id']} revoked.\n"
    assert json.loads(run("revoke", third["token"], "--json")) == {"id": third["id"], "revoked": True}
    assert run("revoke", str(first["id"])) == f"Token {first['id']} was already revoked.\n"
    assert json.loads(run("list", "--json")) == []
    listed = run("list", "--all").splitlines()
    assert listed[0].split()[:4] == ["ID", "PREFIX", "USER", "SCOPE"] and len(listed) == 4
    assert all(line.endswith("(inactive)") for line in listed[1:])


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["create", "--user", "nobody", "--scope", "read"], 2),
        (["create", "--user", "alice", "--scope", "read", "--name", "n" * 101], 2),
        (["list", "--user", "nobody"], 2),
        (["revoke", "4242"], 1),
        (["revoke", "99999999999999999999999999"], 1),
        (["revoke", "opsp_nothin"], 1),
        (["revoke", "opsp_a-whole-token-that-was-never-made-0123456789abc"], 1),
    ],
)
def test_the_command_exits_2_on_usage_errors_and_1_when_nothing_matches(superuser, args, code):
    with pytest.raises(CommandError) as refused:
        run(*args)

    assert refused.value.returncode == code
    assert "never-made-0123456789abc" not in str(refused.value), "a pasted token is not echoed"


def test_a_bad_scope_or_lifetime_from_the_shell_exits_2(var_dir):
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir)
    scope = manage("api", "token", "create", "--user", "alice", "--scope", "admin", env=env)
    lifetime = manage("api", "token", "create", "--user", "alice", "--scope", "read", "--expires", "soon", env=env)

    assert (scope.returncode, lifetime.returncode) == (2, 2)
    assert "argument --scope: invalid choice" in scope.stderr
    assert "argument --expires" in lifetime.stderr and "Traceback" not in scope.stderr + lifetime.stderr


def test_creating_and_revoking_from_the_command_are_audited_as_its_caller(superuser):
    with context.bound(context.for_command()) as caller:
        made = json.loads(run("create", "--user", "alice", "--scope", "read", "--json"))
        run("revoke", str(made["id"]))

    assert [(e.action, e.actor_username) for e in token_events()] == [
        ("model.create", caller.username),
        ("model.update", caller.username),
    ]
