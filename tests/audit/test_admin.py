import re
from http import HTTPStatus

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.core import context

pytestmark = pytest.mark.django_db
LIST = "/admin/audit/auditevent/"


@pytest.fixture
def events(superuser):
    with context.bound(context.RequestContext(request_id="req-find-me-42", ip="203.0.113.7", username="alice")):
        record("alert.ack", resource=("alerts.alert", "7", "disk full"), changes={"state": ["firing", "ack"]})
    record("backup.run", outcome="failure")
    chain.seal()


def test_the_list_filters_and_searches_without_counting_the_whole_table(superuser_client, events):
    with CaptureQueriesContext(connection) as queries:
        page = superuser_client.get(LIST, {"action": "alert.ack"})

    assert page.status_code == HTTPStatus.OK
    rows = page.content.decode()
    assert 'field-action">alert.ack<' in rows and 'field-action">backup.run<' not in rows
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    found = superuser_client.get(LIST, {"q": "req-find-me-42"}).content.decode()
    assert "alerts.alert #7 disk full" in found
    by_address = superuser_client.get(LIST, {"q": " 203.0.113.7 "}).content.decode()
    assert 'field-action">alert.ack<' in by_address and 'field-action">backup.run<' not in by_address
    assert superuser_client.get(LIST, {"outcome__exact": "failure"}).status_code == HTTPStatus.OK
    by_actor = superuser_client.get(LIST, {"actor": "alice"}).content.decode()
    assert 'field-action">alert.ack<' in by_actor and 'field-action">backup.run<' not in by_actor


def test_an_events_page_shows_its_changes_side_by_side(superuser_client, events):
    event = AuditEvent.objects.get(action="alert.ack")

    page = superuser_client.get(f"{LIST}{event.pk}/change/").content.decode()

    assert '<table class="audit-diff">' in page
    assert "<tr><th>state</th><td>firing</td><td>ack</td></tr>" in page


def test_nobody_may_add_change_or_delete_events_in_the_admin(superuser_client, events):
    event = AuditEvent.objects.first()

    assert superuser_client.get(f"{LIST}add/").status_code == HTTPStatus.FORBIDDEN
    assert superuser_client.post(f"{LIST}{event.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    superuser_client.post(f"{LIST}{event.pk}/change/", {"action": "forged"})
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


def test_staff_without_the_view_permission_cannot_read_the_trail(staff_client, events):
    assert staff_client.get(LIST).status_code == HTTPStatus.FORBIDDEN


def test_a_users_page_links_to_its_audit_history(superuser_client):
    frank = User.objects.create_user("frank")
    chain.seal()

    page = superuser_client.get(f"/admin/auth/user/{frank.pk}/change/").content.decode()
    history = f"{LIST}?resource_type=auth.user&amp;resource_id={frank.pk}"

    assert history in page
    listed = superuser_client.get(history.replace("&amp;", "&")).content.decode()
    assert f"auth.user #{frank.pk} frank" in listed


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_filtered_list_exports_and_the_export_is_recorded(superuser_client, events, fmt):
    page = superuser_client.get(LIST, {"action": "alert.ack"}).content.decode()
    assert f"/admin/audit/auditevent/export/{fmt}/?action=alert.ack" in page

    response = superuser_client.get(f"{LIST}export/{fmt}/", {"action": "alert.ack"})
    body = b"".join(response.streaming_content).decode()

    assert response.status_code == HTTPStatus.OK
    assert "alert.ack" in body and "backup.run" not in body
    assert AuditEvent.objects.filter(action="audit.export", details__format=fmt).exists()


def test_an_unknown_export_format_is_a_404(superuser_client):
    assert superuser_client.get(f"{LIST}export/xlsx/").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_streams_asynchronously(async_client, superuser, events):
    await async_client.aforce_login(superuser)

    response = await async_client.get(f"{LIST}export/jsonl/")

    assert response.is_async
    body = "".join([chunk.decode() async for chunk in response.streaming_content])
    await sync_to_async(connections.close_all)()  # the database thread's connection, before the test database goes

    assert "alert.ack" in body and "backup.run" in body


def test_the_date_hierarchy_offers_the_calendar_between_the_first_and_last_event(
    superuser_client, behind_the_orms_back
):
    from datetime import UTC, datetime

    record("custom.january")
    record("custom.march")
    chain.seal()
    for action, moment in (("custom.january", datetime(2031, 1, 30, 12, tzinfo=UTC)),
                           ("custom.march", datetime(2031, 3, 2, 12, tzinfo=UTC))):  # fmt: skip
        behind_the_orms_back("UPDATE audit_auditevent SET timestamp = %s WHERE action = %s", [moment, action])

    years = superuser_client.get(LIST).content.decode()
    months = superuser_client.get(LIST, {"timestamp__year": "2031"}).content.decode()
    days = superuser_client.get(LIST, {"timestamp__year": "2031", "timestamp__month": "3"}).content.decode()
    one_day = superuser_client.get(LIST, {"timestamp__year": "2031", "timestamp__month": "3", "timestamp__day": "2"})

    def links(page: str) -> set[str]:
        return {link.replace("&amp;", "&") for link in re.findall(r'href="\?(timestamp[^"]*)"', page)}

    assert "timestamp__year=2031" in links(years) and "timestamp__year=2020" not in links(years)
    assert {"timestamp__month=2&timestamp__year=2031", "timestamp__month=3&timestamp__year=2031"} <= links(months)
    assert "timestamp__month=4&timestamp__year=2031" not in links(months)  # after the last event
    march = {f"timestamp__day={d}&timestamp__month=3&timestamp__year=2031" for d in (1, 2)}
    assert march <= links(days) and "timestamp__day=3&timestamp__month=3&timestamp__year=2031" not in links(days)
    listed = one_day.content.decode()
    assert 'field-action">custom.march<' in listed and 'field-action">custom.january<' not in listed
