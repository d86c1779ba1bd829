"""Delivery of the outbox against real receivers on loopback, on a controllable clock.

Retries and backoff, Retry-After, permanent failures, redirects, timeouts, the
give-up time and its report on another channel, leases and fencing, the rate
limit, replay, and the sweep that heals a crash between commit and dispatch.
"""

import email.utils
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction

from apps.alerts import delivery, services
from apps.alerts.models import (
    Alert,
    DeliveryAttempt,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationChannel,
    Route,
)
from apps.audit.models import AuditEvent
from tests.receiver import Answer

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
Status = Notification.Status


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def hook(http_receiver, make_channel) -> NotificationChannel:
    return make_channel("hook", url=http_receiver.url())


def deliver(row: Notification) -> Notification:
    delivery.deliver([row.pk])
    row.refresh_from_db()
    return row


def attempts(row: Notification) -> list[tuple[int | None, bool]]:
    return list(DeliveryAttempt.objects.filter(notification=row).order_by("id").values_list("status_code", "delivered"))


def keys(receiver) -> list[str]:
    return [request.headers["idempotency-key"] for request in receiver.requests()]


def route_to(*channels: NotificationChannel) -> None:
    """Every alert, the undeliverable reports included, goes at once to these channels."""
    policy = EscalationPolicy.objects.create(name="everyone")
    EscalationStep.objects.create(policy=policy, position=0).channels.set(channels)
    Route.objects.create(name="default", is_default=True, policy=policy, group_wait_seconds=0)


def in_background(work: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# ---------------------------------------------------------------- retries


@pytest.mark.usefixtures("tasks_run_inline")
def test_500_then_200_is_delivered_with_exactly_one_more_attempt(
    clock, settings, http_receiver, hook, make_notification
):
    settings.ALERTS_RETRY_FIRST_SECONDS = 3
    http_receiver.answer(500, 200)
    row = deliver(make_notification(hook))

    assert row.status == Status.PENDING and row.attempts == 1 and row.last_status == 500
    assert NOW < row.next_attempt_at <= NOW + timedelta(seconds=3)
    assert deliver(row).attempts == 1  # not due yet: nothing sent
    clock.move_to(row.next_attempt_at)
    assert delivery.sweep() == 1

    row.refresh_from_db()
    assert row.status == Status.DELIVERED and row.delivered_at == row.next_attempt_at and row.attempts == 2
    assert attempts(row) == [(500, False), (200, True)]
    assert keys(http_receiver) == [row.key, row.key]


def test_backoff_doubles_from_5_seconds_to_10_minutes_with_full_jitter_and_respects_retry_after():
    ceilings = [max(delivery.backoff(attempt) for _ in range(300)) for attempt in (1, 2, 3, 8, 30)]

    assert [round(c) for c in ceilings[:3]] == [5, 10, 20] and 590 < ceilings[3] <= 600 and ceilings[4] <= 600
    assert min(delivery.backoff(1) for _ in range(300)) < 1
    assert delivery.backoff(1, retry_after=120) == 120


@pytest.mark.parametrize(
    "retry_after",
    ["120", email.utils.format_datetime(NOW + timedelta(seconds=120), usegmt=True)],
    ids=["seconds", "http-date"],
)
def test_429_waits_as_long_as_retry_after_says(retry_after, clock, http_receiver, hook, make_notification):
    http_receiver.answer(Answer(429, headers={"Retry-After": retry_after}))

    row = deliver(make_notification(hook))

    assert row.status == Status.PENDING and row.last_status == 429
    assert row.next_attempt_at == NOW + timedelta(seconds=120)


def test_a_retry_that_would_come_after_the_give_up_time_is_not_waited_for(
    clock, http_receiver, hook, make_notification
):
    http_receiver.answer(Answer(503, headers={"Retry-After": "600"}))

    row = deliver(make_notification(hook, give_up_at=NOW + timedelta(minutes=5)))

    assert row.status == Status.DEAD and row.last_error == "HTTP 503: ok; the next try would be after the give-up time"


@pytest.mark.usefixtures("tasks_run_inline")
def test_a_receiver_slower_than_the_timeout_is_cut_off_and_tried_again_later(
    clock, settings, http_receiver, hook, make_notification
):
    settings.ALERTS_DELIVERY_TIMEOUT_SECONDS = 1
    http_receiver.answer(Answer(200, delay=5))

    started = time.monotonic()
    row = deliver(make_notification(hook))
    took = time.monotonic() - started

    assert 0.9 < took < 2.5
    assert row.status == Status.PENDING and row.last_error == "timed out waiting for the response"
    assert 900 <= DeliveryAttempt.objects.get(notification=row).duration_ms < 2500
    clock.move_to(row.next_attempt_at)
    delivery.sweep()
    row.refresh_from_db()
    assert row.status == Status.DELIVERED and row.attempts == 2


# ---------------------------------------------------------------- permanent failures and dead letters


@pytest.mark.usefixtures("tasks_run_inline")
def test_404_is_dead_at_once_and_reported_by_an_alert_on_another_channel_only(
    start_http_receiver, make_channel, make_notification, django_capture_on_commit_callbacks
):
    broken, pager = start_http_receiver(), start_http_receiver()
    broken.answer(Answer(404, body=b"no such hook"))
    broken_channel = make_channel("broken", url=broken.url())
    make_channel("pager", kind="slack", url=pager.url())
    route_to(*NotificationChannel.objects.all())

    with django_capture_on_commit_callbacks(execute=True):
        row = deliver(make_notification(broken_channel))

    assert row.status == Status.DEAD and row.attempts == 1 and row.last_status == 404
    assert row.last_error == "HTTP 404: no such hook"
    report = Alert.objects.get(source=services.UNDELIVERABLE_SOURCE, key="undeliverable:broken")
    assert report.severity == "error" and report.labels == {"channel": "broken"}
    assert [n.channel.name for n in report.notifications.all()] == ["pager"]
    (message,) = pager.wait_for(1)
    assert "Notifications to channel broken cannot be delivered: HTTP 404: no such hook" in message.json()["text"]
    assert len(broken.requests()) == 1


def test_a_redirect_is_not_followed_and_the_row_is_dead(http_receiver, hook, make_notification):
    http_receiver.answer(Answer(302, headers={"Location": http_receiver.url("/elsewhere?token=abc")}))

    row = deliver(make_notification(hook))

    assert row.status == Status.DEAD and row.last_status == 302
    assert row.last_error == f"redirect to {http_receiver.url('/elsewhere')} not followed"
    assert [request.path for request in http_receiver.requests()] == ["/hook"]


def test_past_its_give_up_time_a_pending_row_is_dead_and_reported(clock, http_receiver, hook, make_notification):
    route_to(hook)
    row = make_notification(
        hook,
        next_attempt_at=NOW - timedelta(minutes=2),
        give_up_at=NOW - timedelta(minutes=1),
        attempts=3,
        last_error="HTTP 503: busy",
    )

    assert delivery.sweep() == 1

    row.refresh_from_db()
    assert row.status == Status.DEAD
    assert row.last_error == "not delivered by the give-up time (3 attempts); last error: HTTP 503: busy"
    assert Alert.objects.filter(key="undeliverable:hook").exists()
    assert not Notification.objects.filter(channel=hook).exclude(pk=row.pk).exists()  # not told on itself
    assert http_receiver.requests() == []


def test_a_dead_report_is_logged_not_reported_again(http_receiver, hook, make_notification):
    route_to(hook)
    http_receiver.answer(410)
    services.alert_fire(
        source=services.UNDELIVERABLE_SOURCE,
        key="undeliverable:mail",
        severity="error",
        summary="mail is down",
        labels={"channel": "mail"},
    )
    (report,) = Notification.objects.filter(channel=hook)

    assert deliver(report).status == Status.DEAD
    assert list(Alert.objects.values_list("key", flat=True)) == ["undeliverable:mail"]


def test_a_notification_for_a_disabled_channel_is_not_sent(http_receiver, hook, make_notification):
    NotificationChannel.objects.filter(pk=hook.pk).update(enabled=False)

    row = deliver(make_notification(hook))

    assert row.status == Status.DEAD and row.last_error == "not sent: the channel is disabled"
    assert http_receiver.requests() == [] and attempts(row) == [] and not Alert.objects.exists()


@pytest.mark.usefixtures("tasks_run_inline")
def test_a_replayed_dead_row_is_delivered_with_the_same_key(
    http_receiver, hook, make_notification, superuser, django_capture_on_commit_callbacks
):
    http_receiver.answer(400, 200)
    row = deliver(make_notification(hook, key="firing:replay:1"))
    assert row.status == Status.DEAD

    with django_capture_on_commit_callbacks(execute=True):
        assert delivery.replay(row, actor=superuser)

    row.refresh_from_db()
    assert row.status == Status.DELIVERED and row.attempts == 1 and row.give_up_at > row.created_at
    assert keys(http_receiver) == ["firing:replay:1", "firing:replay:1"]
    assert AuditEvent.objects.filter(action="notification.replay", actor_username="alice").exists()
    assert not delivery.replay(row)  # only a dead row is replayed


# ---------------------------------------------------------------- leases


@pytest.mark.django_db(transaction=True)
def test_a_second_deliverer_does_not_send_a_row_another_is_sending(http_receiver, hook, make_notification):
    release = threading.Event()
    http_receiver.answer(Answer(200, hold=release))
    row = make_notification(hook)

    first = in_background(lambda: delivery.deliver([row.pk]))
    http_receiver.wait_for(1)
    delivery.deliver([row.pk])  # the duplicate task: the row is leased, it sends nothing
    release.set()
    first.join()

    row.refresh_from_db()
    assert row.status == Status.DELIVERED and len(http_receiver.requests()) == 1 and attempts(row) == [(200, True)]


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_lease_ran_out_cannot_finish_a_row_another_worker_took_over(
    settings, clock, http_receiver, hook, make_notification
):
    release = threading.Event()
    http_receiver.answer(Answer(200, hold=release), 503)
    row = make_notification(hook)

    stale = in_background(lambda: delivery.deliver([row.pk]))
    http_receiver.wait_for(1)
    clock.shift(timedelta(seconds=settings.ALERTS_LEASE_SECONDS + 1))  # the first worker's lease runs out
    delivery.deliver([row.pk])  # another takes the row over: 503
    release.set()  # the stale worker's 200 comes back now
    stale.join()

    row.refresh_from_db()
    assert row.status == Status.PENDING and row.last_status == 503 and row.attempts == 2 and row.lease_owner == ""
    first, second = DeliveryAttempt.objects.filter(notification=row).order_by("id")
    assert first.delivered and "result dropped: the lease had passed to another worker" in first.error
    assert (second.status_code, second.delivered) == (503, False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_row_another_worker_is_claiming_is_skipped_not_waited_for(
    http_receiver, hook, make_notification
):
    row = make_notification(hook)
    locked, release = threading.Event(), threading.Event()

    def claiming() -> None:  # another worker, inside its claim transaction
        with transaction.atomic():
            list(Notification.objects.select_for_update().filter(pk=row.pk))
            locked.set()
            release.wait(10)

    other = in_background(claiming)
    assert locked.wait(5)
    started = time.monotonic()
    delivery.deliver([row.pk])
    assert time.monotonic() - started < 1 and http_receiver.requests() == []  # SKIP LOCKED: no wait, no send
    release.set()
    other.join()

    assert deliver(row).status == Status.DELIVERED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_workers_racing_for_one_row_skip_it_and_one_sends(http_receiver, hook, make_notification):
    release, finished = threading.Event(), threading.Semaphore(0)
    http_receiver.answer(Answer(200, hold=release))
    row = make_notification(hook)
    start = threading.Barrier(6)

    def race() -> None:
        start.wait()
        delivery.deliver([row.pk])
        finished.release()

    workers = [in_background(race) for _ in range(6)]
    http_receiver.wait_for(1)
    for _ in range(5):  # the five that lost return while the winner still holds the row
        assert finished.acquire(timeout=10)
    release.set()
    for worker in workers:
        worker.join()

    row.refresh_from_db()
    assert row.status == Status.DELIVERED and len(http_receiver.requests()) == 1 and row.attempts == 1


# ---------------------------------------------------------------- rate limit, sweep, dispatch


@pytest.mark.usefixtures("tasks_run_inline")
def test_over_the_rate_limit_a_row_waits_for_a_free_slot_without_an_attempt(
    clock, http_receiver, make_channel, make_notification
):
    channel = make_channel("hook", url=http_receiver.url(), rate_limit_per_minute=2)
    rows = [make_notification(channel, key=f"firing:{n}") for n in range(3)]

    delivery.deliver([row.pk for row in rows])

    late = Notification.objects.get(pk=rows[2].pk)
    assert late.status == Status.PENDING and late.attempts == 0 and attempts(late) == []
    assert late.next_attempt_at == NOW + timedelta(minutes=1) and len(http_receiver.requests()) == 2
    clock.shift(timedelta(seconds=59))
    assert delivery.sweep() == 0
    clock.shift(timedelta(seconds=1))
    assert delivery.sweep() == 1
    late.refresh_from_db()
    assert late.status == Status.DELIVERED and keys(http_receiver)[-1] == "firing:2"


@pytest.mark.usefixtures("tasks_run_inline")
def test_rows_committed_without_a_dispatched_task_are_delivered_by_the_sweep(http_receiver, hook, make_notification):
    rows = [make_notification(hook, key=f"firing:crash:{n}") for n in range(3)]  # as if the process died at commit

    assert delivery.sweep() == 3

    assert set(Notification.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    assert sorted(keys(http_receiver)) == sorted(row.key for row in rows)
    assert delivery.sweep() == 0


@pytest.mark.django_db(transaction=True)
def test_rows_dispatched_in_a_transaction_are_delivered_by_the_worker_once_it_commits(
    celery_worker, http_receiver, hook, make_notification, log_lines
):
    with transaction.atomic():
        row = make_notification(hook)
        delivery.dispatch_on_commit([row.pk])
        assert http_receiver.requests() == []

    (request,) = http_receiver.wait_for(1, timeout=15)
    assert request.headers["idempotency-key"] == row.key
    deadline = time.monotonic() + 10
    while not any(line["event"] == "notification_attempt" for line in log_lines()):  # logged after its commit
        assert time.monotonic() < deadline, "the worker did not finish the attempt"
        time.sleep(0.02)
    row.refresh_from_db()
    assert row.status == Status.DELIVERED
