"""Heartbeats in the admin: saved through the service's validation, with their ping URLs and recent pings."""

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission

from apps.alerts.models import State
from apps.hooks.models import Heartbeat
from tests.hooks.heartbeat_helpers import alert_of, make_heartbeat, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

ADD = "/admin/hooks/heartbeat/add/"
FORM = {"name": "nightly", "enabled": "on", "description": "", "period_seconds": "", "cron": "0 3 * * *",
        "timezone": "Europe/Paris", "grace_seconds": "300", "max_runtime_seconds": "", "severity": "error",
        "pings-TOTAL_FORMS": "0", "pings-INITIAL_FORMS": "0"}  # fmt: skip


def change_url(heartbeat: Heartbeat) -> str:
    return f"/admin/hooks/heartbeat/{heartbeat.pk}/change/"


def test_adding_a_heartbeat_saves_it_through_the_service(superuser_client, superuser):
    response = superuser_client.post(ADD, FORM)

    assert response.status_code == HTTPStatus.FOUND
    heartbeat = Heartbeat.objects.get(name="nightly")
    assert (heartbeat.cron, heartbeat.timezone, heartbeat.created_by) == ("0 3 * * *", "Europe/Paris", superuser)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"period_seconds": "3600"}, "cron", "not both"),
        ({"cron": ""}, "period_seconds", "Set a period"),
        ({"cron": "0 3 * *"}, "cron", "needs 5 fields"),
        ({"timezone": "Paris"}, "timezone", "is not a time zone name"),
    ],
)
def test_the_form_shows_the_services_message_under_the_field(superuser_client, changes, field, message):
    response = superuser_client.post(ADD, {**FORM, **changes})

    assert response.status_code == HTTPStatus.OK
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert not Heartbeat.objects.exists()


def test_a_taken_name_is_refused_once(superuser_client):
    make_heartbeat(name="nightly")

    response = superuser_client.post(ADD, FORM)

    assert response.context["adminform"].form.errors["name"] == ["A heartbeat named 'nightly' already exists."]


def test_disabling_in_the_admin_resolves_the_alert(superuser_client):
    heartbeat = make_heartbeat(name="nightly", cron="0 3 * * *", timezone="Europe/Paris")
    send(heartbeat, "fail")

    response = superuser_client.post(change_url(heartbeat), {**FORM, "enabled": ""})

    assert response.status_code == HTTPStatus.FOUND
    assert alert_of(heartbeat).state == State.RESOLVED
    assert Heartbeat.objects.get(pk=heartbeat.pk).status == Heartbeat.Status.NEW


def test_the_change_page_shows_the_ping_urls_a_curl_example_and_recent_pings(superuser_client):
    heartbeat = make_heartbeat(name="nightly")
    send(heartbeat, body=b"rows exported: 1234")

    page = superuser_client.get(change_url(heartbeat)).content.decode()

    url = f"http://testserver/hooks/heartbeat/{heartbeat.uuid}"
    assert f'value="{url}"' in page and f'value="{url}/fail"' in page
    assert f'value="curl -fsS -m 10 --retry 5 -o /dev/null {url}"' in page
    assert "rows exported: 1234" in page and "192.0.2.7" in page


def test_the_list_shows_status_badges(superuser_client):
    up, disabled = make_heartbeat(name="up"), make_heartbeat(name="paused", enabled=False)
    send(up)

    page = superuser_client.get("/admin/hooks/heartbeat/").content.decode()

    assert '<span class="hooks-badge hooks-status-up">up</span>' in page
    assert '<span class="hooks-badge hooks-status-disabled">disabled</span>' in page
    assert disabled.name in page


def test_deleting_in_the_admin_resolves_the_alert(superuser_client):
    heartbeat = make_heartbeat()
    send(heartbeat, "fail")

    superuser_client.post(f"/admin/hooks/heartbeat/{heartbeat.pk}/delete/", {"post": "yes"})

    assert not Heartbeat.objects.exists()
    assert alert_of(heartbeat).state == State.RESOLVED


def test_pings_show_to_whoever_may_view_the_heartbeat(staff_client, staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_heartbeat"))
    heartbeat = make_heartbeat()
    send(heartbeat, body=b"seen by a viewer")

    response = staff_client.get(change_url(heartbeat))

    assert response.status_code == HTTPStatus.OK
    assert "seen by a viewer" in response.content.decode()
