"""The incident engine on a controllable clock: grouping, escalation, reminders, silences, acknowledge, resolve."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from apps.alerts import services
from apps.alerts.models import (
    Alert,
    EscalationPolicy,
    EscalationStep,
    Notification,
    NotificationChannel,
    Route,
    Silence,
    State,
    Transition,
)
from apps.audit.models import AuditEvent
from tests.broadcasts import listen
from tests.threads import in_threads

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # a Monday night


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def channel(name: str) -> NotificationChannel:
    return NotificationChannel.objects.create(
        name=name, kind="webhook", url=f"http://127.0.0.1:9/{name}", internal=True
    )


@pytest.fixture
def oncall():
    """A default route (group_wait 30 s, by service, reminders hourly) whose policy tells primary, then secondary."""
    primary, secondary = channel("primary"), channel("secondary")
    policy = EscalationPolicy.objects.create(name="on-call")
    EscalationStep.objects.create(policy=policy, position=0).channels.set([primary])
    EscalationStep.objects.create(policy=policy, position=1, delay_minutes=5).channels.set([secondary])
    Route.objects.create(name="default", is_default=True, policy=policy, group_by=["service"],
                         group_wait_seconds=30, repeat_interval_minutes=60)  # fmt: skip
    return primary, secondary


def fire(key: str = "db-down", severity: str = "critical", **labels: str) -> Alert:
    return services.alert_fire(source="health", key=key, severity=severity, summary=f"{key} is failing",
                               labels={"service": "db", **labels})  # fmt: skip


def sent(kind: str | None = None) -> list[Notification]:
    rows = Notification.objects.order_by("id")
    return list(rows.filter(kind=kind) if kind else rows)


def kinds(alert: Alert) -> list[str]:
    return list(alert.transitions.values_list("kind", flat=True))


def after(clock, **delta: float) -> dict:
    clock.shift(timedelta(**delta))
    return services.tick()


def test_a_new_alert_waits_for_its_group_then_notifies_the_first_step(clock, oncall):
    alert = fire()
    assert alert.state == State.FIRING and alert.notify_at == START + timedelta(seconds=30)

    assert after(clock, seconds=29)["groups"] == 0 and sent() == []
    after(clock, seconds=1)

    (notification,) = sent()
    assert notification.kind == "firing" and notification.channel == oncall[0]
    assert list(notification.alerts.all()) == [alert]
    assert notification.payload["alerts"][0]["key"] == "db-down" and "FIRING" in notification.payload["title"]
    assert kinds(alert) == ["fired", "notified"]


def test_alerts_of_one_group_go_out_as_one_notification_and_other_groups_apart(clock, oncall):
    first = fire("db-down")
    clock.shift(timedelta(seconds=10))
    second = fire("db-slow")
    other = fire("api-down", service="api")

    after(clock, seconds=20)  # the db group's wait is over, the api group's is not

    (grouped,) = sent()
    assert set(grouped.alerts.all()) == {first, second} and grouped.payload["title"].startswith("[FIRING:2]")
    after(clock, seconds=10)
    assert [list(n.alerts.all()) for n in sent()][1] == [other]


def test_firing_again_while_open_updates_and_counts_without_notifying_again(clock, oncall):
    fire()
    after(clock, seconds=30)
    again = fire(severity="error")

    assert again.fire_count == 2 and again.episode == 1 and again.severity == "error"
    assert after(clock, seconds=30) == {"groups": 0, "escalations": 0, "reminders": 0}
    assert len(sent()) == 1 and "severity" in kinds(again)


def test_fired_and_resolved_within_group_wait_notifies_nobody(clock, oncall):
    fire()
    clock.shift(timedelta(seconds=10))
    services.alert_resolve(source="health", key="db-down")

    after(clock, minutes=120)

    assert sent() == []


def test_escalation_steps_come_at_their_times_and_resolve_tells_everyone_told(clock, oncall):
    primary, secondary = oncall
    alert = fire()
    after(clock, seconds=30)

    assert after(clock, minutes=4)["escalations"] == 0
    assert after(clock, minutes=1)["escalations"] == 1
    escalation = sent("escalation")[0]
    assert escalation.channel == secondary
    assert after(clock, minutes=30)["escalations"] == 0  # no more steps, no repeat

    services.alert_resolve(source="health", key="db-down")

    assert {n.channel for n in sent("resolved")} == {primary, secondary}
    alert.refresh_from_db()
    assert alert.state == State.RESOLVED and alert.escalate_at is None and alert.remind_at is None


def test_acknowledging_stops_escalation_and_reminders_and_is_audited(clock, oncall, superuser):
    alert = fire()
    after(clock, seconds=30)

    assert services.alert_acknowledge(alert, actor=superuser, comment="on it")
    assert not services.alert_acknowledge(alert, actor=superuser)  # already acknowledged: nothing changes
    after(clock, hours=5)

    assert [n.kind for n in sent()] == ["firing"]
    event = AuditEvent.objects.get(action="alert.ack")
    assert event.actor_username == "alice" and event.details["comment"] == "on it"
    ack = alert.transitions.get(kind=Transition.Kind.ACKNOWLEDGED)
    assert ack.actor == superuser and ack.comment == "on it"


def test_unacknowledging_resumes_escalation(clock, oncall, superuser):
    alert = fire()
    after(clock, seconds=30)
    services.alert_acknowledge(alert, actor=superuser)
    after(clock, minutes=10)

    assert services.alert_unacknowledge(alert, actor=superuser)
    after(clock, minutes=5)

    assert [n.kind for n in sent()] == ["firing", "escalation"]


def test_reminders_come_every_repeat_interval_while_firing(clock, oncall):
    fire()
    after(clock, seconds=30)
    after(clock, minutes=5)  # escalated to secondary

    assert after(clock, minutes=55)["reminders"] == 1
    reminders = sent("reminder")
    assert {n.channel.name for n in reminders} == {"primary", "secondary"}
    assert after(clock, minutes=59)["reminders"] == 0
    assert after(clock, minutes=1)["reminders"] == 1
    assert len({n.key for n in sent("reminder")}) == 4


def test_a_new_episode_after_resolve_notifies_again_with_new_keys(clock, oncall):
    fire()
    after(clock, seconds=30)
    services.alert_resolve(source="health", key="db-down")

    again = fire()
    after(clock, seconds=30)

    assert again.episode == 2 and again.fire_count == 1 and "refired" in kinds(again)
    firing = sent("firing")
    assert len(firing) == 2 and firing[0].key != firing[1].key


def test_a_silence_records_the_alert_but_tells_nobody_until_it_ends(clock, oncall, superuser):
    silence = Silence.objects.create(
        matchers=["service=db", "key=~db-.*"], starts_at=START, ends_at=START + timedelta(hours=1),
        comment="db migration", created_by=superuser,
    )  # fmt: skip
    alert = fire()
    assert alert.silenced_by == silence and "silenced" in kinds(alert)

    after(clock, minutes=30)
    assert sent() == []
    after(clock, minutes=30)  # the silence is over and the alert still fires

    assert [n.kind for n in sent()] == ["firing"]
    alert.refresh_from_db()
    assert alert.silenced_by is None


def test_a_silenced_alert_resolved_during_the_silence_notifies_nobody(clock, oncall):
    Silence.objects.create(matchers=["severity!=info"], starts_at=START, ends_at=START + timedelta(hours=1),
                           comment="noise")  # fmt: skip
    fire()
    clock.shift(timedelta(minutes=10))
    services.alert_resolve(source="health", key="db-down")
    after(clock, hours=2)

    assert sent() == []


def test_a_weekly_maintenance_window_silences_each_week(clock, oncall):
    Silence.objects.create(matchers=["source=health"], starts_at=START - timedelta(days=7, minutes=5),
                           ends_at=START - timedelta(days=7) + timedelta(hours=1), repeat=Silence.Repeat.WEEKLY,
                           comment="Monday maintenance")  # fmt: skip
    alert = fire()

    assert alert.silenced_by is not None
    after(clock, seconds=30)
    assert sent() == []
    after(clock, hours=1)
    assert len(sent("firing")) == 1


def test_a_tick_run_twice_does_its_work_once(clock, oncall):
    fire()
    clock.shift(timedelta(seconds=30))

    first, second = services.tick(), services.tick()

    assert first["groups"] == 1 and second["groups"] == 0 and len(sent()) == 1


def test_routes_match_in_order_and_the_default_takes_the_rest(clock, oncall):
    payments = channel("payments")
    policy = EscalationPolicy.objects.create(name="payments")
    EscalationStep.objects.create(policy=policy).channels.set([payments])
    Route.objects.create(name="payments", position=0, severities=["critical"], matchers=["team=payments"],
                         policy=policy, group_wait_seconds=0)  # fmt: skip

    matched = fire("card-failures", team="payments")
    unmatched = fire("card-slow", severity="warning", team="payments")

    assert matched.route.name == "payments" and unmatched.route.name == "default"
    assert sent()[0].channel == payments  # group_wait 0: told in the fire's own transaction


def test_routes_and_silences_changed_after_a_producer_loaded_them_apply_to_its_next_alert(clock, oncall):
    fire("before")  # this process now holds the routes and silences, and their stamp
    policy = EscalationPolicy.objects.create(name="payments")
    payments = Route.objects.create(name="payments", position=0, matchers=["team=payments"], policy=policy,
                                    group_wait_seconds=0)  # fmt: skip
    silence = Silence.objects.create(matchers=["key=quiet"], starts_at=START, ends_at=START + timedelta(hours=1),
                                     comment="maintenance")  # fmt: skip

    routed, quiet = fire("card-failures", team="payments"), fire("quiet")

    assert routed.route == payments and Alert.objects.get(pk=routed.pk).route == payments
    assert quiet.silenced_by == silence and quiet.notify_at == START + timedelta(hours=1)
    assert kinds(quiet) == ["fired", "silenced"]

    payments.delete()
    silence.delete()
    again = fire("card-slow", team="payments")
    assert again.route.name == "default" and again.silenced_by is None
    assert again.notify_at == START + timedelta(seconds=30)


def test_a_repeat_fire_is_one_statement_and_a_new_alert_two(clock, oncall, django_assert_num_queries):
    fire("known")  # loads the routes and silences

    with django_assert_num_queries(1):  # the upsert (in the test's transaction: no savepoint of its own)
        fire("known")
    with django_assert_num_queries(2):  # the upsert and the timeline
        fire("new")


def test_without_any_route_the_alert_is_recorded_as_unrouted(clock):
    alert = fire()

    after(clock, hours=1)

    assert kinds(alert) == ["fired", "unrouted"] and sent() == []


def test_a_report_about_an_undeliverable_channel_skips_that_channel(clock, oncall):
    services.alert_fire(source=services.UNDELIVERABLE_SOURCE, key="undeliverable:primary", severity="error",
                        summary="primary is undeliverable", labels={"channel": "primary", "service": "db"})  # fmt: skip
    after(clock, seconds=30)
    after(clock, minutes=5)

    assert [n.channel.name for n in sent()] == ["secondary"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"severity": "urgent"}, "unknown severity 'urgent'"),
        ({"source": " "}, "source must not be empty"),
        ({"key": "k" * 201}, "key is longer than 200"),
        ({"summary": ""}, "summary must not be empty"),
        ({"labels": ["service"]}, "labels must be a mapping"),
        ({"labels": {"bad name": "x"}}, "label name 'bad name'"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(arguments, message):
    call = {"source": "health", "key": "db-down", "severity": "critical", "summary": "db down", **arguments}

    with pytest.raises(services.AlertError, match=message):
        services.alert_fire(**call)
    assert not Alert.objects.exists()


def test_values_json_cannot_hold_are_converted(clock):
    alert = services.alert_fire(source="backups", key="nightly", severity="ERROR", summary="late",
                                value={"since": START, "size": b"\x00\x01"})  # fmt: skip

    alert.refresh_from_db()
    assert alert.severity == "error" and alert.value["since"] == START.isoformat()


@pytest.mark.django_db(transaction=True)
def test_changes_are_broadcast_on_the_alerts_topic_after_commit(oncall):
    # On the real clock: channels-redis scores group members by time.time(), and a group_send from another
    # test process (on its real clock) drops members scored on a frozen one as a day old.
    key = f"broadcast-{uuid.uuid4().hex}"

    (payload,), _ = listen("alerts", lambda: fire(key), where=lambda payload: payload["key"] == key)

    assert payload["type"] == "alert"
    assert payload["data"]["state"] == "firing" and payload["data"]["source"] == "health"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_fires_of_one_alert_make_one_alert_that_counts_them_all(oncall):
    errors = in_threads(6, 5, lambda thread, n: fire("db-down") if n % 2 else fire("db-down", severity="error"))

    assert errors == []
    alert = Alert.objects.get()
    assert alert.fire_count == 30 and alert.episode == 1
    assert kinds(alert).count("fired") == 1 and kinds(alert).count("severity") >= 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_acknowledge_resolve_and_escalate_end_consistent(oncall, superuser):
    alert = fire()
    Alert.objects.filter(pk=alert.pk).update(
        notify_at=None, escalation_step=1, escalate_at=datetime(2000, 1, 1, tzinfo=UTC)
    )
    start = threading.Barrier(3)
    errors = []

    def run(action) -> None:
        start.wait()
        try:
            action()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    actions = [
        lambda: services.alert_acknowledge(alert, actor=superuser),
        lambda: services.alert_resolve(source="health", key="db-down"),
        lambda: services.tick(),
    ]
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    alert.refresh_from_db()
    assert errors == []
    assert alert.state in (State.RESOLVED, State.ACKNOWLEDGED)
    if alert.state == State.RESOLVED:
        assert alert.escalate_at is None and alert.remind_at is None
    transitions = kinds(alert)
    assert transitions.count("resolved") <= 1 and transitions.count("acknowledged") <= 1
    assert len(sent("escalation")) <= 1
    if "resolved" in transitions:  # nothing happens to a resolved alert
        assert transitions[-1] == "resolved"


def test_a_silence_created_later_marks_the_open_alerts_it_covers_at_once(clock, oncall, superuser):
    firing, other = fire(), fire("api-down", service="api")
    after(clock, seconds=30)
    services.alert_acknowledge(other, actor=superuser)

    silence = Silence.objects.create(matchers=["key=~.*-down"], starts_at=START, ends_at=START + timedelta(hours=2),
                                     comment="known outage")  # fmt: skip

    for alert in (firing, other):
        alert.refresh_from_db()
        assert alert.silenced_by == silence and kinds(alert).count("silenced") == 1
    assert after(clock, minutes=5)["escalations"] == 0  # waits for the silence to end
    after(clock, hours=2)
    firing.refresh_from_db()
    assert firing.silenced_by is None and sent("escalation")
