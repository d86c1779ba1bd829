"""/admin/dashboard/: the page, its history endpoint and acknowledging an alert from it."""

import re
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from apps.alerts import services
from apps.alerts.models import Alert, State
from apps.audit.models import AuditEvent
from apps.metrics.models import Sample, Series

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PAGE = "/admin/dashboard/"
SERIES = "/admin/dashboard/series"
STATIC = Path(settings.BASE_DIR) / "static"
# The page's own code and the vendored library: what a browser loads besides the admin's.
PAGE_FILES = [
    "dashboard/dashboard.js",
    "dashboard/socket.js",
    "dashboard/charts.js",
    "dashboard/dashboard.css",
    "vendor/uplot/uPlot.min.css",
]
LIBRARY = "vendor/uplot/uPlot.iife.min.js"


def grant(user, *permissions: str) -> None:
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def fire(key: str) -> Alert:
    return services.alert_fire(source="metrics", key=key, severity="critical", summary=f"{key} is high")


def acknowledge_url(alert: Alert) -> str:
    return f"/admin/dashboard/alerts/{alert.pk}/acknowledge"


# ---------------------------------------------------------------- the page


def test_the_page_needs_a_staff_login(client, outsider_client):
    assert client.get(PAGE).status_code == HTTPStatus.FOUND
    assert client.get(PAGE)["Location"].startswith("/admin/login/")
    assert outsider_client.get(PAGE)["Location"].startswith("/admin/login/")


def test_the_admin_index_links_to_the_page(superuser_client):
    assert f'href="{PAGE}"' in superuser_client.get("/admin/").content.decode()


def test_the_page_shows_the_tiles_charts_and_parts_the_user_may_see(superuser_client):
    html = superuser_client.get(PAGE).content.decode()
    for name in ("system.cpu.percent", "http.5xx.percent", "http.latency.p95.ms", "dashboard.clients"):
        assert f'data-series="{name}"' in html
    assert html.count("data-chart=") == 4
    for part in ("dashboard-alerts", "dashboard-health", "dashboard-audit"):
        assert part in html
    assert '"can_acknowledge": true' in html


def test_a_staff_member_without_permissions_sees_neither_tiles_alerts_nor_the_audit_tail(staff_client):
    html = staff_client.get(PAGE).content.decode()
    assert "dashboard-tile" not in html and "dashboard-audit" not in html and "dashboard-alert-list" not in html
    assert '"topics": []' in html


def test_the_audit_tail_needs_its_own_permission(staff_client, staff_user):
    grant(staff_user, "metrics.view_series", "alerts.view_alert")
    html = staff_client.get(PAGE).content.decode()
    assert '"topics": ["metrics", "alerts"]' in html
    assert "dashboard-audit" not in html
    assert '"can_acknowledge": false' in html


def test_wall_mode_is_a_query_parameter(superuser_client):
    assert "dashboard-wall" in superuser_client.get(PAGE + "?wall=1").content.decode().split("<body", 1)[1][:300]


def test_nothing_on_the_page_comes_from_another_host(superuser_client):
    """No CDN: the page works offline. Not counted: uPlot's licence banner and XML namespaces (names, never fetched)."""
    texts = [superuser_client.get(PAGE).content.decode()] + [(STATIC / name).read_text() for name in PAGE_FILES]
    texts.append(re.sub(r"^/\*!.*?\*/", "", (STATIC / LIBRARY).read_text(), flags=re.DOTALL))
    external = [url for text in texts for url in re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'<>]*", text)]
    assert [url for url in external if not url.startswith("http://www.w3.org/")] == []


def test_the_page_and_the_library_are_served_by_the_portal(superuser_client):
    html = superuser_client.get(PAGE).content.decode()
    for name in [*PAGE_FILES, LIBRARY]:
        assert f'src="/static/{name}"' in html or f'href="/static/{name}"' in html
        assert (STATIC / name).is_file()
    assert (STATIC / "vendor/uplot/LICENSE").is_file()


# ---------------------------------------------------------------- history


def test_the_series_endpoint_serves_the_points_of_the_range(superuser_client):
    cpu = Series.objects.create(name="system.cpu.percent")
    now = timezone.now()
    Sample.objects.bulk_create([Sample(series=cpu, at=now - timedelta(minutes=m), value=float(m)) for m in (1, 2, 90)])
    response = superuser_client.get(SERIES, {"names": ["system.cpu.percent", "system.memory.percent"], "range": "1h"})
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert (body["range"], body["resolution"]) == ("1h", 0)
    assert [point[1] for point in body["series"]["system.cpu.percent"]] == [2.0, 1.0]
    assert body["series"]["system.memory.percent"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"names": "system.cpu.percent", "range": "2h"}, "range must be one of 15m, 1h, 24h, 7d, 30d"),
        ({"names": "system.cpu.percent"}, "range must be one of"),
        ({"range": "1h"}, "names is required"),
        ({"names": [f"s{i}" for i in range(21)], "range": "1h"}, "at most 20 names"),
    ],
)
def test_the_series_endpoint_refuses_bad_input_with_a_reason(superuser_client, query, message):
    response = superuser_client.get(SERIES, query)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in response.json()["error"]


def test_the_series_endpoint_needs_the_view_series_permission(staff_client, staff_user):
    response = staff_client.get(SERIES, {"names": "system.cpu.percent", "range": "1h"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "metrics.view_series" in response.json()["error"]
    grant(staff_user, "metrics.view_series")
    assert staff_client.get(SERIES, {"names": "system.cpu.percent", "range": "1h"}).status_code == HTTPStatus.OK


# ---------------------------------------------------------------- acknowledging


def test_acknowledging_from_the_page_acknowledges_as_the_user_and_is_audited(superuser_client, superuser):
    alert = fire("cpu")
    response = superuser_client.post(acknowledge_url(alert))
    assert response.status_code == HTTPStatus.OK
    assert response.json()["alert"]["state"] == "acknowledged"
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == (State.ACKNOWLEDGED, superuser)
    event = AuditEvent.objects.get(action="alert.ack", resource_id=str(alert.pk))
    assert event.actor_username == "alice"


def test_acknowledging_twice_is_a_conflict_and_unknown_alerts_are_not_found(superuser_client):
    alert = fire("cpu")
    superuser_client.post(acknowledge_url(alert))
    again = superuser_client.post(acknowledge_url(alert))
    assert again.status_code == HTTPStatus.CONFLICT
    assert "not firing" in again.json()["error"]
    assert superuser_client.post("/admin/dashboard/alerts/999999/acknowledge").status_code == HTTPStatus.NOT_FOUND


def test_acknowledging_needs_the_change_alert_permission(staff_client, staff_user):
    alert = fire("cpu")
    grant(staff_user, "alerts.view_alert")
    response = staff_client.post(acknowledge_url(alert))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert Alert.objects.get(pk=alert.pk).state == State.FIRING
    grant(staff_user, "alerts.change_alert")
    assert staff_client.post(acknowledge_url(alert)).status_code == HTTPStatus.OK


def test_acknowledging_is_post_only_and_csrf_protected(superuser):
    alert = fire("cpu")
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    assert client.get(acknowledge_url(alert)).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.post(acknowledge_url(alert)).status_code == HTTPStatus.FORBIDDEN
    page = client.get(PAGE).content.decode()
    token = re.search(r'data-csrf="([^"]+)"', page).group(1)
    assert client.post(acknowledge_url(alert), HTTP_X_CSRFTOKEN=token).status_code == HTTPStatus.OK
