"""Signed event endpoints in the admin: the secret shown once with examples that work, the mapping refused
with one line per mistake, rotation with an overlap, and the received events as read-only records."""

import html
import re
import subprocess
import sys
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.hooks.models import WebhookEndpoint, WebhookMessage
from tests.hooks.senders import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

ENDPOINTS = "/admin/hooks/webhookendpoint/"
MESSAGES = "/admin/hooks/webhookmessage/"
MAPPING = '{"fire": ["incident.opened"], "resolve": ["incident.closed"], "summary": "data.title"}'


def create(client, name: str = "incidents", mapping: str = MAPPING, **fields):
    return client.post(f"{ENDPOINTS}add/", {"name": name, "enabled": "on", "mapping": mapping, **fields})


def shown_secret(page) -> str:
    return re.search(r'id="hooks-secret"[^>]*value="(whsec_[^"]+)"', page.content.decode()).group(1)


def example(page, language: str) -> str:
    found = re.search(rf'<pre id="hooks-example-{language}">(.*?)</pre>', page.content.decode(), re.DOTALL)
    return html.unescape(found.group(1))


def test_creating_an_endpoint_shows_its_secret_once(superuser_client):
    page = create(superuser_client)

    assert page.status_code == HTTPStatus.OK
    endpoint = WebhookEndpoint.objects.get()
    secret = shown_secret(page)
    assert secret == endpoint.secret and secret.startswith("whsec_")
    assert '<label for="hooks-secret">Signing secret</label>' in page.content.decode()
    assert "no-store" in page["Cache-Control"]
    change = superuser_client.get(f"{ENDPOINTS}{endpoint.pk}/change/")
    assert change.status_code == HTTPStatus.OK and secret not in change.content.decode()
    assert secret[:10] in change.content.decode()  # its first characters tell secrets apart
    assert secret not in superuser_client.get(ENDPOINTS).content.decode()


def test_the_creation_is_audited_without_the_secret(superuser_client):
    create(superuser_client)
    secret = WebhookEndpoint.objects.get().secret
    audited = AuditEvent.objects.filter(resource_type="hooks.webhookendpoint")
    assert audited.exists()
    assert all(secret[6:] not in str(event.changes) for event in audited)


@pytest.mark.parametrize(
    ("mapping", "problems"),
    [
        ('{"fire": "incident.opened"}', ["fire: Input should be a valid list"]),
        (
            '{"fire": ["a"], "resolve": ["a"], "severity": {"default": "P1"}, "colour": "red"}',
            [
                "resolve: a cannot both fire and resolve",
                "severity: unknown severity 'P1'",
                "colour: Extra inputs are not permitted",
            ],
        ),
        ('{"key": "data..id", "labels": {"bad name": "x"}}', ["key.path: a path is", "labels: label names"]),
        ("[1, 2]", ["mapping: Input should be a valid dictionary"]),
        ("{not json", ["Enter a valid JSON."]),
    ],
)
def test_a_wrong_mapping_is_refused_with_a_line_per_mistake(superuser_client, mapping, problems):
    page = create(superuser_client, mapping=mapping)

    assert page.status_code == HTTPStatus.OK
    shown = page.context["adminform"].form.errors["mapping"]
    assert len(shown) == len(problems)
    for line, problem in zip(shown, problems, strict=True):
        assert line.startswith(problem)
    assert not WebhookEndpoint.objects.exists()


def test_a_name_too_long_for_the_alert_source_is_refused(superuser_client):
    page = create(superuser_client, name="n" * 94)
    assert "name" in page.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_an_empty_mapping_is_saved_as_an_empty_object(superuser_client):
    create(superuser_client, mapping="")
    assert WebhookEndpoint.objects.get().mapping == {}


def test_the_name_cannot_be_changed_after_creation(superuser_client, make_endpoint):
    endpoint = make_endpoint(name="incidents")
    superuser_client.post(f"{ENDPOINTS}{endpoint.pk}/change/", {"name": "renamed", "mapping": "{}"})
    endpoint.refresh_from_db()
    assert endpoint.name == "incidents" and endpoint.enabled is False  # the checkbox was left out


@pytest.mark.parametrize("language", ["shell", "python"])
def test_the_examples_on_the_secret_page_deliver_a_test_event(superuser_client, live_server, language):
    page = create(superuser_client)
    code = example(page, language).replace("http://testserver", live_server.url)

    if language == "shell":
        run = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30, check=False)
    else:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)

    assert run.returncode == 0, run.stderr
    assert '"outcome": "fired"' in run.stdout
    alert = Alert.objects.get()
    assert (alert.source, alert.key) == ("events:incidents", "example-1")
    assert alert.summary == "Example event sent to incidents"


def test_rotating_keeps_the_old_secret_for_the_chosen_window_and_shows_the_new_one_once(
    superuser_client, make_endpoint, client
):
    endpoint = make_endpoint(mapping={"fire": ["x"]})
    old = endpoint.secret
    form = superuser_client.get(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/")
    assert form.status_code == HTTPStatus.OK and old not in form.content.decode()

    page = superuser_client.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/", {"keep_hours": "24"})

    endpoint.refresh_from_db()
    new = shown_secret(page)
    assert (endpoint.secret, endpoint.previous_secret) == (new, old)
    assert abs(endpoint.previous_secret_expires_at - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    assert old not in page.content.decode()
    assert deliver(client, endpoint, {"type": "y"}, secrets=old).status_code == HTTPStatus.OK
    assert deliver(client, endpoint, {"type": "y"}, secrets=new).status_code == HTTPStatus.OK
    rotations = AuditEvent.objects.filter(resource_type="hooks.webhookendpoint", resource_id=str(endpoint.pk))
    assert rotations.exists()
    assert all(old[6:] not in str(event.changes) and new[6:] not in str(event.changes) for event in rotations)


def test_rotating_with_no_overlap_stops_the_old_secret_now(superuser_client, make_endpoint, client):
    endpoint = make_endpoint()
    old = endpoint.secret
    superuser_client.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/", {"keep_hours": "0"})
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == "" and endpoint.previous_secret_expires_at is None
    assert deliver(client, endpoint, {"type": "y"}, secrets=old).status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize("hours", ["-1", "721", "soon"])
def test_a_rotation_window_out_of_range_is_refused(superuser_client, make_endpoint, hours):
    endpoint = make_endpoint()
    page = superuser_client.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/", {"keep_hours": hours})
    assert page.status_code == HTTPStatus.OK and "keep_hours" in page.context["form"].errors
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_a_viewer_sees_no_secret_and_cannot_rotate(staff_client, staff_user, make_endpoint):
    endpoint = make_endpoint()
    staff_user.user_permissions.add(Permission.objects.get(codename="view_webhookendpoint"))

    page = staff_client.get(f"{ENDPOINTS}{endpoint.pk}/change/")

    assert page.status_code == HTTPStatus.OK and endpoint.secret not in page.content.decode()
    assert "rotate-secret" not in page.content.decode()
    rotate = staff_client.post(f"{ENDPOINTS}{endpoint.pk}/rotate-secret/", {"keep_hours": "1"})
    assert rotate.status_code == HTTPStatus.FORBIDDEN
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_received_events_are_listed_searchable_and_read_only(superuser_client, make_endpoint, client):
    endpoint = make_endpoint(mapping={"fire": ["incident.opened"], "summary": "data.title"})
    deliver(client, endpoint, {"type": "incident.opened", "data": {"id": "a", "title": "t"}}, message_id="msg_aaa")
    deliver(client, endpoint, {"type": "deploy.done"}, message_id="msg_bbb")

    listed = superuser_client.get(MESSAGES).content.decode()
    assert "msg_aaa" in listed and "msg_bbb" in listed and "events:incidents/a" in listed
    by_id = superuser_client.get(MESSAGES, {"q": "msg_bbb"}).content.decode()
    assert "msg_bbb" in by_id and "msg_aaa" not in by_id
    by_type = superuser_client.get(MESSAGES, {"q": "incident.opened"}).content.decode()
    assert "msg_aaa" in by_type and "msg_bbb" not in by_type

    message = WebhookMessage.objects.get(message_id="msg_aaa")
    detail = superuser_client.get(f"{MESSAGES}{message.pk}/change/").content.decode()
    assert f"/admin/alerts/alert/{Alert.objects.get().pk}/change/" in detail and "&quot;title&quot;" in detail
    assert superuser_client.get(f"{MESSAGES}add/").status_code == HTTPStatus.FORBIDDEN
    assert superuser_client.post(f"{MESSAGES}{message.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
