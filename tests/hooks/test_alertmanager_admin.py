"""Alertmanager receivers in the admin: a token made on creation and on demand, shown once, stored as a digest."""

import html
import json
import re
from http import HTTPStatus

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.hooks import tokens
from apps.hooks.admin_alertmanager import receiver_config
from apps.hooks.models import AlertmanagerReceiver
from tests.hooks.test_alertmanager import notification, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

RECEIVERS = "/admin/hooks/alertmanagerreceiver/"
TOKEN = re.compile(r'credentials: "(opam_[A-Za-z0-9_-]{43})"')


def text(page) -> str:
    return html.unescape(page.content.decode())


def shown_token(page) -> str:
    [token] = TOKEN.findall(text(page))
    return token


def hook_client(token: str) -> Client:
    return Client(headers={"authorization": f"Bearer {token}"})


def add(client: Client, name: str = "prod", **fields: str):
    return client.post(f"{RECEIVERS}add/", {"name": name, "enabled": "on", "default_severity": "warning", **fields})


def test_adding_a_receiver_shows_its_token_once_with_the_alertmanager_config(superuser_client):
    page = add(superuser_client)

    assert page.status_code == HTTPStatus.OK
    token = shown_token(page)
    assert "no-cache" in page["Cache-Control"] and "no-store" in page["Cache-Control"]
    assert receiver_config("prod", "http://testserver/hooks/alertmanager/prod/", token) in text(page)
    receiver = AlertmanagerReceiver.objects.get()
    assert receiver.token_digest == tokens.digest(token) and token.startswith(receiver.token_prefix)
    assert len(receiver.token_prefix) == 11
    field = f"alertmanager-token-{receiver.pk}"
    assert f'<label for="{field}">Token</label>' in text(page) and f'<input id="{field}"' in text(page)
    # Its own change page shows only the token's start.
    change = text(superuser_client.get(f"{RECEIVERS}{receiver.pk}/change/"))
    assert receiver.token_prefix in change and token not in change
    assert post(hook_client(token), notification()).status_code == HTTPStatus.OK


def test_the_config_is_a_webhook_receiver_with_the_bearer_token():
    config = receiver_config("prod", "https://ops.example.org/hooks/alertmanager/prod/", "opam_abc")

    assert config.splitlines() == [
        "receivers:",
        '  - name: "opsportal-prod"',
        "    webhook_configs:",
        '      - url: "https://ops.example.org/hooks/alertmanager/prod/"',
        "        send_resolved: true",
        "        http_config:",
        "          authorization:",
        "            type: Bearer",
        '            credentials: "opam_abc"',
    ]


def test_the_token_is_never_stored_nor_audited(superuser_client):
    token = shown_token(add(superuser_client))

    receiver = AlertmanagerReceiver.objects.get()
    stored = json.dumps(list(AlertmanagerReceiver.objects.values()), default=str)
    assert token not in stored
    [event] = AuditEvent.objects.filter(resource_type="hooks.alertmanagerreceiver")
    assert event.actor_username == "alice"
    recorded = json.dumps([event.changes, event.details])
    assert token not in recorded and receiver.token_digest not in recorded


def test_a_name_that_cannot_be_in_a_url_is_refused(superuser_client):
    page = add(superuser_client, name="prod alerts")

    assert page.status_code == HTTPStatus.OK
    assert page.context["adminform"].form.errors["name"]
    assert not AlertmanagerReceiver.objects.exists()


def test_the_default_severity_must_be_one_the_portal_knows(superuser_client):
    page = add(superuser_client, default_severity="p1")

    assert page.context["adminform"].form.errors["default_severity"]
    assert not AlertmanagerReceiver.objects.exists()


def test_a_new_token_replaces_the_old_one_at_once(superuser_client):
    old = shown_token(add(superuser_client))
    receiver = AlertmanagerReceiver.objects.get()

    page = superuser_client.post(RECEIVERS, {"action": "new_token", "_selected_action": [receiver.pk]})

    new = shown_token(page)
    assert new != old
    assert "no-store" in page["Cache-Control"]
    assert post(hook_client(old), notification()).status_code == HTTPStatus.UNAUTHORIZED
    assert post(hook_client(new), notification()).status_code == HTTPStatus.OK


def test_new_tokens_for_several_receivers_are_shown_together(superuser_client):
    add(superuser_client, "prod")
    add(superuser_client, "staging")
    selected = list(AlertmanagerReceiver.objects.values_list("pk", flat=True))

    page = superuser_client.post(RECEIVERS, {"action": "new_token", "_selected_action": selected})

    configs = re.findall(r'name: "(opsportal-[a-z]+)"', text(page))
    assert configs == ["opsportal-prod", "opsportal-staging"]
    assert len(set(TOKEN.findall(text(page)))) == 2


def test_a_staff_member_who_may_only_view_gets_no_new_token(staff_user, staff_client, superuser_client):
    from django.contrib.auth.models import Permission

    add(superuser_client)
    receiver = AlertmanagerReceiver.objects.get()
    staff_user.user_permissions.add(Permission.objects.get(codename="view_alertmanagerreceiver"))

    page = staff_client.post(RECEIVERS, {"action": "new_token", "_selected_action": [receiver.pk]}, follow=True)

    assert not TOKEN.findall(text(page))
    assert AlertmanagerReceiver.objects.get().token_digest == receiver.token_digest
