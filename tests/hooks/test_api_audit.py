"""/api/v1/audit/events/: filters, detail, keyset pages in chain order (also while events are being recorded)."""

import threading
import time
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.core import context

pytestmark = pytest.mark.usefixtures("fast_passwords")
URL = "/api/v1/audit/events/"


def recorded(action: str, count: int = 1, **kwargs) -> list[int]:
    """Record events in one transaction and seal them (a commit does; the test's own transaction never commits)."""
    with transaction.atomic():
        ids = [record(action, details={"n": n}, **kwargs) for n in range(count)]
    chain.seal()
    return ids


def walk(client, between=lambda: None, **query) -> list[dict]:
    """Every page of the list, following `next`; `between` runs after each page but the last."""
    items, cursor = [], None
    while True:
        body = client.get(URL, {**query, **({"cursor": cursor} if cursor else {})}).json()
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items
        between()


def fields(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.django_db
def test_the_list_is_newest_first_in_chain_order_with_every_field(read_client, superuser):
    first, second = recorded("test.first", actor=superuser)[0], recorded("test.second")[0]

    response = read_client.get(URL, {"action": ["test.second"]})
    newest = read_client.get(URL).json()["items"][:2]

    assert response.status_code == HTTPStatus.OK
    assert [item["id"] for item in newest] == [second, first]
    assert newest[0]["seq"] == newest[1]["seq"] + 1
    assert newest[1]["actor"] == "alice" and newest[1]["actor_id"] == superuser.pk
    assert newest[1]["details"] == {"n": 0} and newest[1]["outcome"] == "success"
    assert set(newest[0]) == {"id", "seq", "timestamp", "actor_id", "actor", "action", "outcome", "resource_type",
                              "resource_id", "resource_repr", "changes", "details", "ip", "user_agent",
                              "request_id"}  # fmt: skip


@pytest.mark.django_db
def test_the_filters_narrow_the_list(read_client, superuser, staff_user):
    with context.bound(context.RequestContext(request_id="req-filter-0001", ip="192.0.2.7")):
        by_alice = recorded("test.filter", actor=superuser, resource=("backups.backup", "7", "nightly/7"))[0]
    by_bob = recorded("test.filter", actor=staff_user, resource=("backups.backup", "8", "nightly/8"))[0]
    other = recorded("test.other", actor=staff_user, outcome="failure")[0]

    def ids(**query) -> list[int]:
        response = read_client.get(URL, query)
        assert response.status_code == HTTPStatus.OK, response.content
        return [item["id"] for item in response.json()["items"] if item["id"] in {by_alice, by_bob, other}]

    assert ids(actor="alice") == [by_alice]
    assert ids(action="test.filter") == [by_bob, by_alice]
    assert ids(resource_type="backups.backup", resource_id="8") == [by_bob]
    assert ids(request_id="req-filter-0001") == [by_alice]
    assert ids(ip="192.0.2.7") == [by_alice]
    assert ids(outcome="failure") == [other]
    assert ids(actor="bob", action="test.other") == [other]


@pytest.mark.django_db
def test_since_and_until_bound_the_time(read_client):
    (event_id,) = recorded("test.when")
    at = AuditEvent.objects.get(pk=event_id).timestamp

    def found(**query) -> bool:
        return event_id in [item["id"] for item in read_client.get(URL, query).json()["items"]]

    assert found(since=at.isoformat(), until=(at + timedelta(seconds=1)).isoformat())
    assert not found(since=(at + timedelta(microseconds=1)).isoformat())
    assert not found(until=at.isoformat())  # until is excluded


@pytest.mark.django_db
def test_pages_hold_each_event_once_newest_first(read_client):
    ids = recorded("test.page", 25)

    items = walk(read_client, action="test.page", limit=10)

    assert [item["id"] for item in items] == ids[::-1]
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 25
    assert read_client.get(URL, {"action": "test.page", "limit": 10}).json()["next"] == str(seqs[9])


@pytest.mark.django_db
def test_oldest_first_the_last_seq_seen_gives_exactly_what_was_recorded_since(read_client):
    before = recorded("test.follow", 3)
    seen = walk(read_client, action="test.follow", order="oldest", limit=2)
    assert [item["id"] for item in seen] == before

    after = recorded("test.follow", 2)
    cursor = seen[-1]["seq"]
    response = read_client.get(URL, {"action": "test.follow", "order": "oldest", "cursor": cursor})

    assert [item["id"] for item in response.json()["items"]] == after


@pytest.mark.django_db
def test_an_event_not_yet_sealed_is_not_listed_but_has_its_detail(read_client):
    event_id = record("test.unsealed")  # autocommit: sealed at the end of the request or task that wrote it

    listed = [item["id"] for item in read_client.get(URL, {"action": "test.unsealed"}).json()["items"]]
    detail = read_client.get(f"{URL}{event_id}/")

    assert listed == []
    assert detail.status_code == HTTPStatus.OK and detail.json()["seq"] is None and detail.json()["hash"] == ""


@pytest.mark.django_db
def test_the_detail_has_the_chain_links(read_client):
    first, second = recorded("test.detail", 2)

    response = read_client.get(f"{URL}{second}/")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["id"] == second and len(body["hash"]) == 64
    assert body["prev_hash"] == AuditEvent.objects.get(pk=first).hash


@pytest.mark.django_db
@pytest.mark.parametrize("event_id", ["999999999", "9223372036854775807"])
def test_an_unknown_event_is_a_404_problem(read_client, event_id):
    response = read_client.get(f"{URL}{event_id}/")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "²"}, "cursor"),
        ({"cursor": "12a"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"outcome": "maybe"}, "outcome"),
        ({"order": "random"}, "order"),
        ({"ip": "not-an-address"}, "ip"),
        ({"since": "2026-12-01T10:00:00"}, "since"),  # no time zone
        ({"until": "tomorrow"}, "until"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"until": "0.5"}, "until"),  # a number is not date-time, though pydantic would read it as Unix time
        ({"since": "1796126400"}, "since"),
        ({"action": "x" * 65}, "action"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(read_client, query, field):
    response = read_client.get(URL, query)

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert fields(response) == [field]


@pytest.mark.django_db
def test_a_cursor_past_any_id_is_before_every_event_newest_first_and_after_every_one_oldest_first(read_client):
    ids = recorded("test.far", 2)
    far = "9" * 40  # past a bigint too

    assert [item["id"] for item in walk(read_client, action="test.far", cursor=far)] == ids[::-1]
    assert walk(read_client, action="test.far", cursor=far, order="oldest") == []


@pytest.mark.django_db
def test_an_event_id_past_a_bigint_is_a_400(read_client):
    response = read_client.get(f"{URL}99999999999999999999/")
    assert response.status_code == HTTPStatus.BAD_REQUEST and fields(response) == ["event_id"]


@pytest.mark.django_db
def test_without_credentials_it_is_401_and_staff_need_the_view_permission(client, staff_client, staff_user, grant):
    (event_id,) = recorded("test.private")
    assert client.get(URL).status_code == HTTPStatus.UNAUTHORIZED
    assert client.get(f"{URL}{event_id}/").status_code == HTTPStatus.UNAUTHORIZED

    refused = [staff_client.get(URL), staff_client.get(f"{URL}{event_id}/")]
    assert [response.status_code for response in refused] == [HTTPStatus.FORBIDDEN] * 2
    assert "audit.view_auditevent" in refused[0].json()["detail"]

    grant(staff_user, "audit.view_auditevent")
    assert staff_client.get(f"{URL}{event_id}/").json()["action"] == "test.private"


@pytest.mark.django_db
def test_the_list_is_read_only(write_client):
    response = write_client.post(URL, {}, content_type="application/json")
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED


# ---------------------------------------------------------------- while events are being recorded (PostgreSQL)


class Writers:
    """Threads that record audit events until stopped; one of them holds each transaction open a little while
    another commits, so ids become visible out of order (a lower id after a higher one)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.written = 0
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(pause,)) for pause in (0.0, 0.003)]

    def __enter__(self) -> "Writers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def wait_for(self, more: int) -> None:
        """Until `more` events have been written from now (or 10 s, which the test's count then shows)."""
        target, deadline = self.written + more, time.monotonic() + 10
        while self.written < target and time.monotonic() < deadline and not self.errors:
            self.stop.wait(0.002)

    def _run(self, pause: float) -> None:
        try:
            while not self.stop.is_set():
                with transaction.atomic():
                    record("test.concurrent")
                    self.stop.wait(pause)
                self.written += 1
        except BaseException as error:  # reported by the test
            self.errors.append(error)
        finally:
            connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_paging_while_events_are_recorded_lists_every_existing_event_exactly_once(read_client):
    recorded("test.concurrent", 100)
    with Writers() as writers:
        writers.wait_for(20)  # the writers are well under way
        existing = set(AuditEvent.objects.filter(seq__isnull=False).values_list("id", flat=True))
        written_before = writers.written
        items = walk(read_client, between=lambda: writers.wait_for(2), limit=10)  # events land between pages
        written_during = writers.written - written_before

    ids = [item["id"] for item in items]
    assert writers.errors == []
    assert written_during > 10, "no events were recorded while the test paged"
    assert len(ids) == len(set(ids)), "an event was listed twice"
    assert existing <= set(ids), f"events missing: {sorted(existing - set(ids))[:10]}"
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(seqs, reverse=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_following_oldest_first_does_not_skip_an_event_whose_lower_id_commits_late(read_client):
    """What an id cursor gets wrong: the slow transaction's id is lower than the last one seen."""
    slow: list[int] = []
    inserted, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                slow.append(record("test.late"))
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert inserted.wait(10)
        fast = recorded("test.late")
        seen = walk(read_client, action="test.late", order="oldest")
    finally:
        release.set()
        thread.join(10)

    assert slow[0] < fast[0] and [item["id"] for item in seen] == fast
    since = read_client.get(URL, {"action": "test.late", "order": "oldest", "cursor": seen[-1]["seq"]}).json()
    assert [item["id"] for item in since["items"]] == slow
    assert AuditEvent.objects.get(pk=slow[0]).timestamp <= timezone.now()
