"""A page of the alerts list sent again while no alert changed: the same bytes, never older than a committed change.

Embedded, the epoch is kept in the local-memory cache; in the PostgreSQL run, in Redis.
Writes run inside django_capture_on_commit_callbacks(execute=True): their epoch moves
as at a commit.
"""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.alerts import revision, services
from apps.alerts.models import Alert, Silence, State
from apps.hooks.api import reuse
from tests.services import REDIS_DOWN

pytestmark = pytest.mark.django_db
ALERTS = "/api/v1/alerts/"


@pytest.fixture(autouse=True)
def keep_pages(settings):
    settings.API_LIST_CACHE_SECONDS = 5
    reuse._kept.clear()
    yield
    reuse._kept.clear()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """committed(write): run write() as if its transaction committed (its on_commit callbacks run)."""

    def run(write):
        with django_capture_on_commit_callbacks(execute=True):
            return write()

    return run


def fire(key: str, **labels: str) -> Alert:
    return services.alert_fire(
        source="health", key=key, severity="critical", summary=f"{key} is failing", labels=labels
    )


def alert_queries(run) -> int:
    with CaptureQueriesContext(connection) as captured:
        run()
    return sum('"alerts_alert"' in query["sql"] for query in captured.captured_queries)


def fresh(client, **query) -> bytes:
    """What the list answers when nothing is reused."""
    with override_settings(API_LIST_CACHE_SECONDS=0):
        response = client.get(ALERTS, query)
    assert response.status_code == HTTPStatus.OK
    return response.content


def test_a_kept_page_is_sent_again_without_a_query_and_is_what_a_fresh_read_answers(read_client, committed):
    committed(lambda: [fire("disk-full", team="dba"), fire("cpu-hot")])

    first = read_client.get(ALERTS, {"state": "firing"})
    again = []
    assert alert_queries(lambda: again.append(read_client.get(ALERTS, {"state": "firing"}))) == 0

    assert first.status_code == again[0].status_code == HTTPStatus.OK
    assert first.content == again[0].content == fresh(read_client, state="firing")
    assert again[0]["Content-Type"] == first["Content-Type"] == "application/json; charset=utf-8"
    assert [item["key"] for item in again[0].json()["items"]] == ["cpu-hot", "disk-full"]


def test_each_query_keeps_its_own_page(read_client, committed):
    committed(lambda: [fire("disk-full"), fire("cpu-hot")])
    committed(lambda: services.alert_resolve(source="health", key="cpu-hot"))

    pages = {state: read_client.get(ALERTS, {"state": state}).json() for state in ("firing", "resolved")}
    one = read_client.get(ALERTS, {"limit": 1}).json()

    assert [item["key"] for item in pages["firing"]["items"]] == ["disk-full"]
    assert [item["key"] for item in pages["resolved"]["items"]] == ["cpu-hot"]
    assert len(one["items"]) == 1 and one["next"] is not None
    assert read_client.get(ALERTS, {"limit": 1, "cursor": one["next"]}).json()["items"][0]["key"] == "disk-full"


def silence_dba() -> Silence:
    now = timezone.now()
    return Silence.objects.create(
        matchers=["team=dba"], starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1), comment="swap"
    )


WRITES = {
    "a new alert": lambda alert, user: fire("web-down"),
    "a fire of an open alert (its count and time)": lambda alert, user: fire(alert.key),
    "acknowledge": lambda alert, user: services.alert_acknowledge(alert, actor=user),
    "resolve": lambda alert, user: services.alert_resolve(source=alert.source, key=alert.key, actor=user),
    "a silence over it": lambda alert, user: silence_dba(),
    "a delete": lambda alert, user: Alert.objects.filter(pk=alert.pk).delete(),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_change_of_an_alert_is_read_at_once(read_client, superuser, committed, write):
    alert = committed(lambda: fire("disk-full", team="dba"))
    before = read_client.get(ALERTS).content

    committed(lambda: write(alert, superuser))

    after = read_client.get(ALERTS).content
    assert after != before
    assert after == fresh(read_client)


def test_deleting_the_silence_of_an_alert_is_read_at_once(read_client, committed):
    """The database clears the alert's silenced_by: no save of the alert says so."""
    alert = committed(lambda: fire("disk-full", team="dba"))
    silence = committed(silence_dba)
    assert read_client.get(ALERTS).json()["items"][0]["silenced"] is True

    committed(silence.delete)

    assert Alert.objects.get(pk=alert.pk).silenced_by is None
    assert read_client.get(ALERTS).json()["items"][0]["silenced"] is False


def test_a_change_committed_by_another_process_is_read_at_once(read_client, committed):
    alert = committed(lambda: fire("disk-full"))
    read_client.get(ALERTS)

    # What another process's write is here: the row changes, then (after its commit) the epoch moves.
    Alert.objects.filter(pk=alert.pk).update(state=State.ACKNOWLEDGED)
    revision.EPOCH.move()

    assert read_client.get(ALERTS).json()["items"][0]["state"] == "acknowledged"


def test_a_change_whose_epoch_was_lost_is_read_once_the_page_is_too_old(read_client, committed):
    alert = committed(lambda: fire("disk-full"))
    read_client.get(ALERTS)
    Alert.objects.filter(pk=alert.pk).update(state=State.ACKNOWLEDGED)  # no epoch: Redis was down at the commit

    assert read_client.get(ALERTS).json()["items"][0]["state"] == "firing"  # kept: nothing says it changed
    ((key, (kept_at, epoch, body)),) = reuse._kept.items()
    reuse._kept[key] = (kept_at - 5, epoch, body)  # API_LIST_CACHE_SECONDS later

    assert read_client.get(ALERTS).json()["items"][0]["state"] == "acknowledged"


def test_with_the_cache_unreadable_every_read_queries(read_client, committed, log_lines):
    committed(lambda: fire("disk-full"))

    with override_settings(CACHES=REDIS_DOWN):
        counts = [alert_queries(lambda: read_client.get(ALERTS)) for _ in range(2)]

    assert counts == [1, 1] and reuse._kept == {}
    assert "epoch_unreadable" in {line["event"] for line in log_lines()}


def test_off_every_read_queries(read_client, committed, settings):
    settings.API_LIST_CACHE_SECONDS = 0
    committed(lambda: fire("disk-full"))

    assert [alert_queries(lambda: read_client.get(ALERTS)) for _ in range(2)] == [1, 1]
    assert reuse._kept == {}


def test_a_kept_page_is_still_refused_to_who_may_not_read_alerts(read_client, bearer, staff_user, committed):
    committed(lambda: fire("disk-full"))
    assert read_client.get(ALERTS).status_code == HTTPStatus.OK

    assert bearer(staff_user).get(ALERTS).status_code == HTTPStatus.FORBIDDEN


def test_a_process_keeps_a_bounded_number_of_pages_the_newest(read_client, committed, monkeypatch):
    monkeypatch.setattr(reuse, "KEPT_MAX", 3)
    committed(lambda: fire("disk-full"))

    for limit in range(1, 6):
        read_client.get(ALERTS, {"limit": limit})

    assert [key.split('"limit":')[1].split(",")[0] for key in reuse._kept] == ["3", "4", "5"]
