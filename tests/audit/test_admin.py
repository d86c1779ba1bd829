from http import HTTPStatus

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.core import context

pytestmark = pytest.mark.django_db
LIST = "/admin/audit/auditevent/"


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def events(superuser):
    with context.bound(context.RequestContext(request_id="req-find-me-42", ip="203.0.113.7", username="alice")):
        record("alert.ack", resource=("alerts.alert", "7", "disk full"), changes={"state": ["firing", "ack"]})
    record("backup.run", outcome="failure")
    chain.seal()


def test_the_list_filters_and_searches_without_counting_the_whole_table(admin_client_, events):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client_.get(LIST, {"action": "alert.ack"})

    assert page.status_code == HTTPStatus.OK
    rows = page.content.decode()
    assert 'field-action">alert.ack<' in rows and 'field-action">backup.run<' not in rows
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    found = admin_client_.get(LIST, {"q": "req-find-me-42"}).content.decode()
    assert "alerts.alert #7 disk full" in found
    assert admin_client_.get(LIST, {"q": "203.0.113.7"}).status_code == HTTPStatus.OK
    assert admin_client_.get(LIST, {"outcome__exact": "failure"}).status_code == HTTPStatus.OK
    by_actor = admin_client_.get(LIST, {"actor": "alice"}).content.decode()
    assert 'field-action">alert.ack<' in by_actor and 'field-action">backup.run<' not in by_actor


def test_an_events_page_shows_its_changes_side_by_side(admin_client_, events):
    event = AuditEvent.objects.get(action="alert.ack")

    page = admin_client_.get(f"{LIST}{event.pk}/change/").content.decode()

    assert '<table class="audit-diff">' in page
    assert "<tr><th>state</th><td>firing</td><td>ack</td></tr>" in page


def test_nobody_may_add_change_or_delete_events_in_the_admin(admin_client_, events):
    event = AuditEvent.objects.first()

    assert admin_client_.get(f"{LIST}add/").status_code == HTTPStatus.FORBIDDEN
    assert admin_client_.post(f"{LIST}{event.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    admin_client_.post(f"{LIST}{event.pk}/change/", {"action": "forged"})
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


def test_staff_without_the_view_permission_cannot_read_the_trail(staff_client, events):
    assert staff_client.get(LIST).status_code == HTTPStatus.FORBIDDEN


def test_a_users_page_links_to_its_audit_history(admin_client_):
    frank = User.objects.create_user("frank")
    chain.seal()

    page = admin_client_.get(f"/admin/auth/user/{frank.pk}/change/").content.decode()
    history = f"{LIST}?resource_type=auth.user&amp;resource_id={frank.pk}"

    assert history in page
    listed = admin_client_.get(history.replace("&amp;", "&")).content.decode()
    assert f"auth.user #{frank.pk} frank" in listed


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_filtered_list_exports_and_the_export_is_recorded(admin_client_, events, fmt):
    page = admin_client_.get(LIST, {"action": "alert.ack"}).content.decode()
    assert f"/admin/audit/auditevent/export/{fmt}/?action=alert.ack" in page

    response = admin_client_.get(f"{LIST}export/{fmt}/", {"action": "alert.ack"})
    body = b"".join(response.streaming_content).decode()

    assert response.status_code == HTTPStatus.OK
    assert "alert.ack" in body and "backup.run" not in body
    assert AuditEvent.objects.filter(action="audit.export", details__format=fmt).exists()


def test_an_unknown_export_format_is_a_404(admin_client_):
    assert admin_client_.get(f"{LIST}export/xlsx/").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_streams_asynchronously(async_client, superuser, events):
    await async_client.aforce_login(superuser)

    response = await async_client.get(f"{LIST}export/jsonl/")

    assert response.is_async
    body = "".join([chunk.decode() async for chunk in response.streaming_content])
    assert "alert.ack" in body and "backup.run" in body
