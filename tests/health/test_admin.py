"""HealthTarget in the admin: validation with clear messages, the list, checking on demand, the audit trail."""

from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.health import services
from apps.health.models import HealthTarget
from tests.receiver import Answer

pytestmark = pytest.mark.django_db

FORM = {
    "name": "api",
    "kind": "http",
    "enabled": "on",
    "description": "",
    "url": "",
    "method": "GET",
    "expected_status": "200",
    "keyword": "",
    "host": "",
    "port": "",
    "timeout_seconds": "5",
    "interval_seconds": "60",
    "for_seconds": "",
    "alert_on": "critical",
    "latency_warning_ms": "",
    "latency_critical_ms": "",
    "cert_warning_days": "",
    "cert_critical_days": "",
}


def add(client: Client, **fields: str):
    return client.post(reverse("admin:health_healthtarget_add"), {**FORM, **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "htp:/nowhere"}, "This URL cannot be used"),
        ({"url": "http://127.0.0.1:8080/health"}, "127.0.0.1 is a loopback address"),
        ({"url": "https://1.1.1.1/", "latency_warning_ms": "-1"}, "Ensure this value is greater than or equal to"),
        ({"kind": "tcp", "host": "db.internal"}, "A TCP target needs a port (1-65535)."),
    ],
)
def test_a_bad_target_is_refused_with_a_clear_message(superuser_client, fields, message):
    response = add(superuser_client, **fields)

    assert response.status_code == HTTPStatus.OK  # the form again, not a 500
    assert message in response.content.decode()
    assert not HealthTarget.objects.exists()


def test_a_valid_target_is_saved_and_audited(superuser_client, receiver):
    response = add(superuser_client, url=receiver.url("/health?token=s3cret"), is_internal="on", keyword="ok")

    assert response.status_code == HTTPStatus.FOUND
    target = HealthTarget.objects.get()
    assert target.check_name == "target:api" and target.is_internal
    events = AuditEvent.objects.filter(resource_type="health.healthtarget", resource_id=str(target.pk))
    (event,) = events
    assert (event.action, event.actor_username) == ("admin.add", "alice")
    assert event.changes["name"] == [None, "api"] and event.changes["url"] == [None, "***"]


def test_the_list_shows_each_target_with_its_last_status_and_no_url_secrets(superuser_client, receiver, with_targets):
    HealthTarget.objects.create(name="api", url=receiver.url("/health?token=s3cret"), is_internal=True)
    HealthTarget.objects.create(name="smtp", kind="tcp", host="127.0.0.1", port=25, is_internal=True, enabled=False)
    services.run_and_store()

    page = superuser_client.get(reverse("admin:health_healthtarget_changelist")).content.decode()

    assert f"http://127.0.0.1:{receiver.port}/…" in page and "s3cret" not in page
    assert "127.0.0.1:25" in page
    assert ">ok<" in page


def test_check_now_runs_the_selected_targets_and_reports_each(superuser_client, receiver, with_targets):
    receiver.always(Answer(503))
    target = HealthTarget.objects.create(name="api", url=receiver.url(), is_internal=True)

    response = superuser_client.post(
        reverse("admin:health_healthtarget_changelist"),
        {"action": "check_now", "_selected_action": [target.pk]},
        follow=True,
    )

    assert response.status_code == HTTPStatus.OK
    assert "Target:api is critical: HTTP 503, expected 200" in response.content.decode()  # capitalised by the admin
    assert len(receiver.requests()) == 1


def test_staff_without_permission_cannot_see_targets(staff_client):
    assert staff_client.get(reverse("admin:health_healthtarget_changelist")).status_code == HTTPStatus.FORBIDDEN
