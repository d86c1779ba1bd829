"""The alerts admin through the test client: lists, bulk actions, an alert's page, validation on save, permissions."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from apps.alerts import matchers, services, silences
from apps.alerts.forms import exact_matcher
from apps.alerts.models import (
    Alert,
    DeliveryAttempt,
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

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
ALERTS = "/admin/alerts/alert/"
CHANNELS = "/admin/alerts/notificationchannel/"
ROUTES = "/admin/alerts/route/"
POLICIES = "/admin/alerts/escalationpolicy/"
SILENCES = "/admin/alerts/silence/"
NOTIFICATIONS = "/admin/alerts/notification/"
PUBLIC_URL = "https://93.184.216.34/services/T0001/B0002/TOKENPART"  # a literal address: no DNS in tests


def fire(key: str, severity: str = "critical", source: str = "health", **labels: str) -> Alert:
    return services.alert_fire(source=source, key=key, severity=severity, summary=f"{key} is failing", labels=labels)


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def act(client: Client, action: str, alerts: list[Alert], **extra: str):
    return client.post(ALERTS, {"action": action, "_selected_action": [alert.pk for alert in alerts], **extra})


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="alerts", codename__in=codenames))


# ---------------------------------------------------------------- the alert list


def test_the_list_shows_state_and_severity_badges_and_filters(superuser_client, superuser):
    disk, cpu, web = fire("disk-full"), fire("cpu-hot", "warning"), fire("web-down", "error", source="hooks")
    services.alert_acknowledge(cpu, actor=superuser)
    silence = Silence.objects.create(
        matchers=["key=web-down"],
        starts_at=timezone.now(),
        ends_at=timezone.now() + timedelta(hours=1),
        comment="deploy",
    )
    Alert.objects.filter(pk=web.pk).update(silenced_by=silence)

    page = superuser_client.get(ALERTS)

    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert '<span class="alert-badge alert-severity-critical">critical</span>' in html
    assert '<span class="alert-badge alert-state-acknowledged">acknowledged</span>' in html
    assert "health/disk-full" in html and "opsportal/alerts.css" in html

    def listed(**query: str) -> set[str]:
        return {alert.key for alert in superuser_client.get(ALERTS, query).context["cl"].result_list}

    assert listed(state__exact="acknowledged") == {"cpu-hot"}
    assert listed(severity__exact="critical") == {"disk-full"}
    assert listed(source__exact="hooks") == {"web-down"}
    assert listed(silenced="yes") == {"web-down"} and listed(silenced="no") == {"disk-full", "cpu-hot"}
    assert listed(q="disk") == {"disk-full"}
    assert disk.state == State.FIRING


def test_bulk_acknowledge_changes_state_reports_counts_and_is_audited(superuser_client, superuser):
    one, two, three = fire("a"), fire("b"), fire("c")
    services.alert_acknowledge(three, actor=superuser)

    response = act(superuser_client, "acknowledge", [one, two, three])

    assert response.status_code == HTTPStatus.FOUND
    assert said(response) == ["2 acknowledged, 1 was not firing."]
    assert set(Alert.objects.values_list("state", flat=True)) == {State.ACKNOWLEDGED}
    assert Alert.objects.get(pk=one.pk).acknowledged_by.username == "alice"
    events = AuditEvent.objects.filter(action="alert.ack", resource_id__in=[str(one.pk), str(two.pk)])
    assert [e.actor_username for e in events] == ["alice", "alice"]


def test_bulk_resolve_resolves_open_alerts_once_and_is_audited(superuser_client):
    one, two = fire("a"), fire("b")
    services.alert_resolve(source="health", key="b")

    response = act(superuser_client, "resolve", [one, two])

    assert said(response) == ["1 resolved, 1 was already resolved."]
    resolved = Alert.objects.get(pk=one.pk)
    assert resolved.state == State.RESOLVED and resolved.resolved_by.username == "alice"
    assert list(AuditEvent.objects.filter(action="alert.resolve").values_list("resource_id", flat=True)) == [
        str(one.pk)
    ]


@pytest.mark.parametrize(("action", "hours"), [("silence_1h", 1), ("silence_4h", 4)])
def test_silencing_from_the_list_creates_an_exact_silence_per_alert(superuser_client, action, hours):
    alert, other = fire("db.primary*"), fire("db.primary-2")

    response = act(superuser_client, action, [alert])

    assert "1 alert silenced until" in said(response)[0]
    silence = Silence.objects.get()
    assert silence.matchers == ["source=health", "key=db.primary*"]
    assert silence.ends_at - silence.starts_at == timedelta(hours=hours)
    assert silence.created_by.username == "alice"
    now = timezone.now()
    assert silences.covering(matchers.alert_fields("health", alert.key, "critical", {}), now)[0] == silence
    assert silences.covering(matchers.alert_fields("health", other.key, "critical", {}), now) is None


@pytest.mark.parametrize("value", ["plain", "~starts-with-tilde", "a.b*c", "with space", "=~x"])
def test_an_exact_matcher_matches_its_value_and_nothing_else(value):
    rule = matchers.parse(exact_matcher("key", value))

    assert rule.matches({"key": value})
    assert not rule.matches({"key": value + "x"}) and not rule.matches({"key": "x" + value})


def test_the_custom_silence_asks_for_duration_and_comment_first(superuser_client):
    alert = fire("disk-full")

    page = act(superuser_client, "silence_for", [alert])
    assert page.status_code == HTTPStatus.OK and b"health/disk-full" in page.content
    assert not Silence.objects.exists()

    bad = act(superuser_client, "silence_for", [alert], apply="Silence", duration="2 weeks", comment="x")
    assert bad.status_code == HTTPStatus.OK
    assert "is not a duration" in bad.content.decode() and not Silence.objects.exists()

    done = act(superuser_client, "silence_for", [alert], apply="Silence", duration="90m", comment="disk swap")
    assert done.status_code == HTTPStatus.FOUND
    silence = Silence.objects.get()
    assert silence.comment == "disk swap" and silence.ends_at - silence.starts_at == timedelta(minutes=90)


# ---------------------------------------------------------------- an alert's page


@pytest.fixture
def webhook() -> NotificationChannel:
    return NotificationChannel.objects.create(name="ops-hook", kind="webhook", url="http://127.0.0.1:9/", internal=True)


@pytest.fixture
def notified(webhook) -> Alert:
    """An alert notified at once (group_wait 0) to a webhook, with one failed attempt on record."""
    policy = EscalationPolicy.objects.create(name="on-call")
    EscalationStep.objects.create(policy=policy).channels.set([webhook])
    Route.objects.create(name="all", is_default=True, policy=policy, group_wait_seconds=0)
    alert = fire("db-down")
    notification = Notification.objects.get()
    DeliveryAttempt.objects.create(
        notification=notification,
        at=timezone.now(),
        worker="w-1",
        status_code=503,
        error="HTTP 503 from receiver",
        duration_ms=12,
    )
    return alert


def test_an_alerts_page_shows_its_timeline_and_deliveries(superuser_client, superuser, notified):
    services.alert_acknowledge(notified, actor=superuser, comment="looking at the replica")

    page = superuser_client.get(f"{ALERTS}{notified.pk}/change/")

    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    timeline = html[html.index('id="alert-timeline"') : html.index('id="alert-deliveries"')]
    assert [kind for kind in ("fired", "notified", "acknowledged") if f"alert-transition-{kind}" in timeline] == [
        "fired",
        "notified",
        "acknowledged",
    ]
    assert "looking at the replica" in timeline and "alice" in timeline
    deliveries = html[html.index('id="alert-deliveries"') :]
    assert "ops-hook" in deliveries and "HTTP 503 from receiver" in deliveries and "w-1" in deliveries
    assert 'value="unacknowledge"' in html and 'value="acknowledge"' not in html


def test_the_page_buttons_acknowledge_unacknowledge_and_resolve_with_a_comment(superuser_client):
    alert = fire("db-down")
    url = f"{ALERTS}{alert.pk}/act/"

    assert said(superuser_client.post(url, {"do": "acknowledge", "comment": "mine"})) == [
        "health/db-down: acknowledged."
    ]
    superuser_client.post(url, {"do": "unacknowledge"})
    superuser_client.post(url, {"do": "resolve", "comment": "fixed the disk"})
    again = superuser_client.post(url, {"do": "resolve"})

    assert said(again)[-1] == "health/db-down is resolved: nothing to resolve."
    steps = list(Transition.objects.filter(alert=alert).values_list("kind", "actor_name", "comment"))
    assert steps[-3:] == [
        ("acknowledged", "alice", "mine"),
        ("unacknowledged", "alice", ""),
        ("resolved", "alice", "fixed the disk"),
    ]
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="alert.").order_by("id")] == [
        "alert.ack",
        "alert.unack",
        "alert.resolve",
    ]
    assert superuser_client.get(url).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert superuser_client.post(url, {"do": "explode"}).status_code == HTTPStatus.BAD_REQUEST


def test_the_page_buttons_need_the_csrf_token(superuser):
    alert = fire("db-down")
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    assert client.post(f"{ALERTS}{alert.pk}/act/", {"do": "acknowledge"}).status_code == HTTPStatus.FORBIDDEN
    assert Alert.objects.get(pk=alert.pk).state == State.FIRING


def test_nobody_adds_edits_or_deletes_alerts_or_notifications_by_hand(superuser_client, notified):
    notification = Notification.objects.get()
    assert superuser_client.get(f"{ALERTS}add/").status_code == HTTPStatus.FORBIDDEN
    assert superuser_client.post(f"{ALERTS}{notified.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    assert superuser_client.post(f"{ALERTS}{notified.pk}/change/", {"summary": "x"}).status_code == HTTPStatus.FORBIDDEN
    assert superuser_client.post(f"{NOTIFICATIONS}{notification.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    assert Alert.objects.get(pk=notified.pk).summary == "db-down is failing"


# ---------------------------------------------------------------- permissions


def test_staff_without_alerts_permissions_see_nothing_and_act_on_nothing(staff_client, webhook):
    alert = fire("db-down")

    assert b"/admin/alerts/" not in staff_client.get("/admin/").content
    for url in (ALERTS, f"{ALERTS}{alert.pk}/change/", CHANNELS, ROUTES, POLICIES, SILENCES, NOTIFICATIONS):
        assert staff_client.get(url).status_code == HTTPStatus.FORBIDDEN, url
    assert staff_client.post(f"{ALERTS}{alert.pk}/act/", {"do": "acknowledge"}).status_code == HTTPStatus.FORBIDDEN
    assert staff_client.post(f"{CHANNELS}{webhook.pk}/send-test/").status_code == HTTPStatus.FORBIDDEN
    assert act(staff_client, "acknowledge", [alert]).status_code == HTTPStatus.FORBIDDEN
    assert Alert.objects.get(pk=alert.pk).state == State.FIRING and not Notification.objects.exists()


def test_viewing_alerts_is_not_acting_on_them(staff_client, staff_user):
    alert = fire("db-down")
    grant(staff_user, "view_alert")

    page = staff_client.get(ALERTS)
    assert page.status_code == HTTPStatus.OK and b'value="acknowledge"' not in page.content
    act(staff_client, "acknowledge", [alert])
    assert staff_client.post(f"{ALERTS}{alert.pk}/act/", {"do": "acknowledge"}).status_code == HTTPStatus.FORBIDDEN
    assert Alert.objects.get(pk=alert.pk).state == State.FIRING

    grant(staff_user, "change_alert")
    act(staff_client, "acknowledge", [alert])
    assert Alert.objects.get(pk=alert.pk).state == State.ACKNOWLEDGED
    assert b'value="silence_1h"' not in staff_client.get(ALERTS).content  # silencing needs add_silence


# ---------------------------------------------------------------- notification channels


def channel_form(**fields: str) -> dict:
    return {
        "name": "ops",
        "kind": "webhook",
        "enabled": "on",
        "recipients": "",
        "url": PUBLIC_URL,
        "secret": "",
        "headers": "{}",
        "rate_limit_per_minute": "30",
        **fields,
    }


def errors(page) -> dict:
    assert page.status_code == HTTPStatus.OK, page.status_code
    return page.context["adminform"].form.errors


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "ftp://93.184.216.34/",
    ],
)
def test_a_webhook_url_to_an_internal_address_is_a_form_error(superuser_client, url):
    found = errors(superuser_client.post(f"{CHANNELS}add/", channel_form(url=url)))

    assert list(found) == ["url"]
    assert "cannot be used" in found["url"][0] or "not an allowed destination" in found["url"][0]
    assert not NotificationChannel.objects.exists()


def test_internal_allows_a_private_receiver_but_never_the_metadata_address(superuser_client):
    metadata = channel_form(url="http://169.254.169.254/", internal="on")
    assert "url" in errors(superuser_client.post(f"{CHANNELS}add/", metadata))

    saved = superuser_client.post(f"{CHANNELS}add/", channel_form(url="http://10.0.0.5:8080/hook", internal="on"))

    assert saved.status_code == HTTPStatus.FOUND
    channel = NotificationChannel.objects.get()
    assert channel.url == "http://10.0.0.5:8080/hook" and channel.secret.startswith("whsec_")  # generated


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "email", "url": "", "recipients": "ops@example.org, not-an-address"}, "recipients", "not-an-address"),
        ({"kind": "email", "url": "", "recipients": ""}, "recipients", "at least one address"),
        ({"kind": "slack", "url": ""}, "url", "needs a URL"),
        ({"headers": '["X-Team", "ops"]'}, "headers", "JSON object"),
        ({"headers": "{not json"}, "headers", "valid JSON"),
        ({"headers": '{"Host": "evil.example"}'}, "headers", "cannot be overridden"),
        ({"headers": '{"content-type": "text/plain"}'}, "headers", "cannot be overridden"),
        ({"headers": '{"Webhook-Signature": "v1,forged"}'}, "headers", "cannot be overridden"),
        ({"headers": '{"X-Count": 3}'}, "headers", "text on one line"),
        ({"headers": '{"X-Bad": "a\\r\\nInjected: 1"}'}, "headers", "text on one line"),
        ({"headers": '{"Bad Name": "x"}'}, "headers", "not a valid header name"),
        ({"secret": "hunter2"}, "secret", "whsec_"),
        ({"secret": "whsec_not*base64!"}, "secret", "whsec_"),
    ],
)
def test_a_channel_with_bad_settings_gets_an_error_on_the_field(superuser_client, fields, field, message):
    found = errors(superuser_client.post(f"{CHANNELS}add/", channel_form(**fields)))

    assert field in found and message in " ".join(found[field]), found
    assert not NotificationChannel.objects.exists()


def test_a_good_email_channel_is_saved_with_one_address_a_line(superuser_client):
    form = channel_form(kind="email", url="", recipients="a@example.org, b@example.org;c@example.org")

    assert superuser_client.post(f"{CHANNELS}add/", form).status_code == HTTPStatus.FOUND
    assert NotificationChannel.objects.get().recipients == "a@example.org\nb@example.org\nc@example.org"


def test_url_and_secret_are_masked_in_the_list_and_for_viewers(superuser_client, staff_client, staff_user):
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    channel = NotificationChannel.objects.create(name="slack-ops", kind="webhook", url=PUBLIC_URL, secret=secret)
    grant(staff_user, "view_notificationchannel")

    listing = superuser_client.get(CHANNELS).content.decode()
    viewed = staff_client.get(f"{CHANNELS}{channel.pk}/change/").content.decode()

    assert "https://93.184.216.34/…" in listing
    for html in (listing, viewed):
        assert "TOKENPART" not in html and secret not in html
    assert "Send test notification" not in viewed


# ---------------------------------------------------------------- routes, policies, silences


@pytest.fixture
def policy() -> EscalationPolicy:
    return EscalationPolicy.objects.create(name="on-call")


def route_form(policy: EscalationPolicy, **fields) -> dict:
    return {
        "name": "payments",
        "position": "0",
        "severities": ["critical"],
        "matchers": "team=payments",
        "policy": str(policy.pk),
        "group_by": "service",
        "group_wait_seconds": "30",
        "repeat_interval_minutes": "240",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"severities": ["critical", "apocalyptic"]}, "severities", "apocalyptic"),
        ({"matchers": "team=payments\nservice=~api-(.*"}, "matchers", "not a valid regular expression"),
        ({"matchers": "just some words"}, "matchers", "is not a matcher"),
        ({"group_by": "service\n9lives"}, "group_by", "9lives"),
    ],
)
def test_a_route_with_bad_rules_gets_an_error_on_the_field(superuser_client, policy, fields, field, message):
    found = errors(superuser_client.post(f"{ROUTES}add/", route_form(policy, **fields)))

    assert field in found and message in " ".join(found[field]), found
    assert not Route.objects.exists()


def test_a_second_default_route_is_a_form_error_not_a_crash(superuser_client, policy):
    Route.objects.create(name="catch-all", is_default=True, policy=policy)

    found = errors(superuser_client.post(f"{ROUTES}add/", route_form(policy, is_default="on")))

    assert "already a default route (catch-all)" in found["is_default"][0]


def test_a_good_route_is_saved_as_lists(superuser_client, policy):
    form = route_form(policy, matchers="team=payments\n env =~ prod-.* ", group_by="service\ncluster\nservice")

    assert superuser_client.post(f"{ROUTES}add/", form).status_code == HTTPStatus.FOUND
    route = Route.objects.get()
    assert (route.severities, route.matchers, route.group_by) == (
        ["critical"],
        ["team=payments", "env=~prod-.*"],
        ["service", "cluster"],
    )


def test_a_policy_is_edited_with_its_steps_and_their_channels(superuser_client, webhook):
    pager = NotificationChannel.objects.create(name="pager", kind="email", recipients="oncall@example.org")
    form = {
        "name": "on-call",
        "repeat": "1",
        "repeat_delay_minutes": "30",
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "0",
        "steps-0-delay_minutes": "0",
        "steps-0-channels": [str(webhook.pk)],
        "steps-1-position": "1",
        "steps-1-delay_minutes": "15",
        "steps-1-channels": [str(webhook.pk), str(pager.pk)],
    }

    assert superuser_client.post(f"{POLICIES}add/", form).status_code == HTTPStatus.FOUND
    steps = EscalationPolicy.objects.get().steps.order_by("position")
    assert [(s.delay_minutes, sorted(c.name for c in s.channels.all())) for s in steps] == [
        (0, ["ops-hook"]),
        (15, ["ops-hook", "pager"]),
    ]
    assert superuser_client.get(POLICIES).status_code == HTTPStatus.OK


def silence_form(start, end, **fields) -> dict:
    start, end = timezone.localtime(start), timezone.localtime(end)
    return {
        "matchers": "source=health\nkey=~db-.*",
        "starts_at_0": f"{start:%Y-%m-%d}",
        "starts_at_1": f"{start:%H:%M:%S}",
        "ends_at_0": f"{end:%Y-%m-%d}",
        "ends_at_1": f"{end:%H:%M:%S}",
        "repeat": "",
        "repeat_until_0": "",
        "repeat_until_1": "",
        "comment": "replica rebuild",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"matchers": "key=~db-(["}, "matchers", "not a valid regular expression"),
        ({"matchers": ""}, "matchers", "required"),
        ({"swap": True}, "ends_at", "after the start"),
        ({"repeat": "weekly", "repeat_until_0": "2000-01-01", "repeat_until_1": "00:00:00"}, "repeat_until", "after"),
    ],
)
def test_a_silence_with_bad_input_gets_an_error_on_the_field(superuser_client, fields, field, message):
    now = timezone.now().replace(microsecond=0)
    start, end = (now + timedelta(hours=2), now) if fields.pop("swap", False) else (now, now + timedelta(hours=2))

    found = errors(superuser_client.post(f"{SILENCES}add/", silence_form(start, end, **fields)))

    assert field in found and message in " ".join(found[field]), found
    assert not Silence.objects.exists()


def test_a_silence_is_saved_with_its_creator_and_listed_as_active(superuser_client):
    now = timezone.now().replace(microsecond=0)

    saved = superuser_client.post(f"{SILENCES}add/", silence_form(now, now + timedelta(hours=2)))
    assert saved.status_code == HTTPStatus.FOUND
    Silence.objects.create(
        matchers=["source=x"], starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1), comment="long over"
    )

    silence = Silence.objects.get(comment="replica rebuild")
    assert silence.created_by.username == "alice" and silence.matchers == ["source=health", "key=~db-.*"]
    rows = superuser_client.get(SILENCES).context["cl"].result_list
    admin = superuser_client.get(SILENCES).context["cl"].model_admin
    assert {row.comment: admin.active_now(row) for row in rows} == {"replica rebuild": True, "long over": False}

    act_on = superuser_client.post(SILENCES, {"action": "expire", "_selected_action": [silence.pk]})
    assert said(act_on) == ["1 silence ended."]
    assert silences.window(Silence.objects.get(pk=silence.pk), timezone.now()) is None


# ---------------------------------------------------------------- the outbox


def test_notifications_are_listed_read_only_with_their_attempts(superuser_client, notified):
    notification = Notification.objects.get()

    listing = superuser_client.get(NOTIFICATIONS, {"status__exact": "pending"})
    page = superuser_client.get(f"{NOTIFICATIONS}{notification.pk}/change/").content.decode()

    assert [row.pk for row in listing.context["cl"].result_list] == [notification.pk]
    assert superuser_client.get(NOTIFICATIONS, {"status__exact": "dead"}).context["cl"].result_list.count() == 0
    assert "HTTP 503 from receiver" in page and "health/db-down" in page


def test_replay_sends_dead_notifications_again_with_the_same_key(
    superuser_client,
    http_receiver,
    make_channel,
    make_notification,
    tasks_run_inline,
    django_capture_on_commit_callbacks,
):
    channel = make_channel("ops-hook", url=http_receiver.url())
    dead = make_notification(
        channel, "firing:dead:1", status=Notification.Status.DEAD, attempts=5, last_error="HTTP 503"
    )
    delivered = make_notification(channel, "firing:fine:1", status=Notification.Status.DELIVERED)

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            NOTIFICATIONS, {"action": "replay", "_selected_action": [dead.pk, delivered.pk]}
        )

    assert said(response) == ["1 sent again, 1 was not dead."]
    (request,) = http_receiver.wait_for(1)
    assert request.headers["webhook-id"] == "firing:dead:1"
    assert Notification.objects.get(pk=dead.pk).status == Notification.Status.DELIVERED
    assert AuditEvent.objects.get(action="notification.replay").actor_username == "alice"


def test_replay_needs_the_change_permission(staff_client, staff_user, make_channel, make_notification):
    dead = make_notification(make_channel("ops-hook", url="http://127.0.0.1:9/"), status=Notification.Status.DEAD)
    grant(staff_user, "view_notification")

    assert b'value="replay"' not in staff_client.get(NOTIFICATIONS).content
    staff_client.post(NOTIFICATIONS, {"action": "replay", "_selected_action": [dead.pk]})
    assert Notification.objects.get(pk=dead.pk).status == Notification.Status.DEAD


# ---------------------------------------------------------------- send test notification


def test_send_test_delivers_to_the_receiver_and_says_so(superuser_client, http_receiver, make_channel):
    channel = make_channel("ops-hook", url=http_receiver.url())
    page = superuser_client.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
    assert f'action="{CHANNELS}{channel.pk}/send-test/"' in page and "Send test notification" in page
    assert "resource_type=alerts.notificationchannel" in page  # its audit history

    response = superuser_client.post(f"{CHANNELS}{channel.pk}/send-test/")

    assert response.status_code == HTTPStatus.FOUND
    assert said(response) == ["Test notification to ops-hook delivered (status 200)."]
    (request,) = http_receiver.wait_for(1)
    assert request.headers["webhook-id"].startswith("test:") and request.json()["type"] == "alert.test"
    assert AuditEvent.objects.get(action="channel.test").actor_username == "alice"


def test_send_test_shows_the_receivers_error(superuser_client, http_receiver, make_channel):
    channel = make_channel("ops-hook", url=http_receiver.url())
    http_receiver.answer(404)

    response = superuser_client.post(f"{CHANNELS}{channel.pk}/send-test/")

    assert said(response) == ["Test notification to ops-hook failed: HTTP 404: ok"]
    assert superuser_client.get(f"{CHANNELS}{channel.pk}/send-test/").status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_send_test_needs_the_change_permission(staff_client, staff_user, make_channel, http_receiver):
    channel = make_channel("ops-hook", url=http_receiver.url())
    grant(staff_user, "view_notificationchannel")

    assert staff_client.post(f"{CHANNELS}{channel.pk}/send-test/").status_code == HTTPStatus.FORBIDDEN
    assert http_receiver.requests() == [] and not Notification.objects.exists()
