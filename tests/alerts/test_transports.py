"""Each transport against a real receiver on loopback: what arrives, signed and keyed as promised."""

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks
import time_machine

from apps.alerts import delivery
from apps.alerts.models import DeliveryAttempt, Notification
from apps.alerts.transports import mail

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def delivered(row: Notification) -> Notification:
    delivery.deliver([row.pk])
    row.refresh_from_db()
    return row


def test_a_webhook_is_signed_so_that_the_standard_webhooks_library_verifies_it(
    http_receiver, make_channel, make_notification
):
    channel = make_channel("hook", url=http_receiver.url(), secret=SECRET, headers={"X-Team": "payments"})
    row = make_notification(channel, key="firing:1234:7")

    assert delivered(row).status == Notification.Status.DELIVERED
    (request,) = http_receiver.requests()
    assert standardwebhooks.Webhook(SECRET).verify(request.body, request.headers) == request.json()
    body = request.json()
    assert body["type"] == "alert.firing" and body["timestamp"] == row.created_at.isoformat()
    assert body["data"] == row.payload
    assert request.headers["webhook-id"] == request.headers["idempotency-key"] == "firing:1234:7"
    assert request.headers["content-type"] == "application/json" and request.headers["x-team"] == "payments"


def test_a_signature_made_with_another_secret_does_not_verify(http_receiver, make_channel, make_notification):
    delivered(make_notification(make_channel("hook", url=http_receiver.url(), secret=SECRET)))
    (request,) = http_receiver.requests()
    other = "whsec_" + base64.b64encode(b"another secret, 32 bytes long!!!").decode()

    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(request.body, request.headers)


def test_a_webhook_channel_without_a_secret_gets_one_and_keeps_it(http_receiver, make_channel, make_notification):
    channel = make_channel("hook", url=http_receiver.url())
    delivered(make_notification(channel, key="one"))
    delivered(make_notification(channel, key="two"))

    channel.refresh_from_db()
    assert channel.secret.startswith("whsec_") and len(base64.b64decode(channel.secret[6:])) == 24
    for request in http_receiver.requests():  # both signed with the one kept
        standardwebhooks.Webhook(channel.secret).verify(request.body, request.headers)


@pytest.mark.parametrize("name", ["webhook-signature", "Content-Type", "Host", "Idempotency-Key", "Bad Name"])
def test_custom_headers_cannot_override_what_the_signature_and_framing_rely_on(
    name, http_receiver, make_channel, make_notification
):
    channel = make_channel("hook", url=http_receiver.url(), headers={name: "forged"})

    row = delivered(make_notification(channel))

    assert row.status == Notification.Status.DEAD and name in row.last_error
    assert http_receiver.requests() == []


def test_slack_gets_its_text_and_the_idempotency_key(http_receiver, make_channel, make_notification):
    channel = make_channel("slack", kind="slack", url=http_receiver.url("/services/T0/B0/x"))
    alert = {
        "severity": "critical",
        "source": "health",
        "key": "db",
        "summary": "p99 > 2s <script>",
        "url": "https://ops.example.org/admin/alerts/alert/1/change/",
    }
    payload = {"kind": "firing", "title": "[FIRING] critical: db & co", "text": "ignored", "alerts": [alert]}
    row = delivered(make_notification(channel, key="firing:slack:1", payload=payload))

    assert row.status == Notification.Status.DELIVERED
    (request,) = http_receiver.requests()
    assert request.path == "/services/T0/B0/x" and request.headers["idempotency-key"] == "firing:slack:1"
    assert request.json() == {
        "text": "*[FIRING] critical: db &amp; co*\n"
        "• [critical] health/db: p99 &gt; 2s &lt;script&gt; <https://ops.example.org/admin/alerts/alert/1/change/|open>"
    }


def test_an_email_arrives_with_its_subject_body_and_a_message_id_stable_across_attempts(
    smtp_server, make_channel, make_notification
):
    channel = make_channel("ops-mail", kind="email", recipients="oncall@example.org,\nlead@example.org")
    row = delivered(make_notification(channel, key="firing:mail:1"))

    assert row.status == Notification.Status.DELIVERED
    (mail_,) = smtp_server.mails
    assert mail_.recipients == ["oncall@example.org", "lead@example.org"] and not mail_.encrypted
    assert mail_.message["Subject"] == "[FIRING] critical: db is down"
    assert mail_.message.get_content().strip() == "- db is down"
    assert mail_.message["Message-ID"] == mail.message_id("firing:mail:1") != mail.message_id("firing:mail:2")


def test_with_starttls_offered_the_mail_goes_encrypted(start_smtp_server, make_channel, make_notification):
    server = start_smtp_server(starttls=True)
    row = delivered(make_notification(make_channel("ops-mail", kind="email", recipients="oncall@example.org")))

    assert row.status == Notification.Status.DELIVERED
    assert [mail_.encrypted for mail_ in server.mails] == [True]


def test_starttls_required_but_not_offered_fails_and_sends_nothing_in_plain_text(
    smtp_server, settings, make_channel, make_notification
):
    settings.EMAIL_USE_TLS = True  # the server (smtp_server's default) does not offer STARTTLS
    row = delivered(make_notification(make_channel("ops-mail", kind="email", recipients="oncall@example.org")))

    assert row.status == Notification.Status.DEAD and "STARTTLS" in row.last_error
    assert smtp_server.mails == []


def test_a_channel_with_a_bad_recipient_is_dead_without_sending(smtp_server, make_channel, make_notification):
    row = delivered(make_notification(make_channel("ops-mail", kind="email", recipients="oncall@, x@example.org")))

    assert row.status == Notification.Status.DEAD and "'oncall@' is not an e-mail address" in row.last_error
    assert smtp_server.mails == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "http://2130706433:{port}/hook"])
def test_a_loopback_url_on_a_channel_not_marked_internal_is_dead_as_blocked(
    url, http_receiver, make_channel, make_notification
):
    channel = make_channel("hook", url=url.format(port=http_receiver.port), internal=False)

    row = delivered(make_notification(channel))

    assert row.status == Notification.Status.DEAD
    assert row.last_error == "blocked: 127.0.0.1 is a loopback address"
    assert http_receiver.requests() == []


def test_a_test_notification_is_sent_at_once_and_says_so(http_receiver, make_channel, superuser):
    channel = make_channel("hook", url=http_receiver.url(), secret=SECRET)

    with time_machine.travel(NOW, tick=False):
        row = delivery.send_test(channel, actor=superuser)

    assert row.status == Notification.Status.DELIVERED and row.kind == Notification.Kind.TEST
    assert row.key.startswith(f"test:{channel.pk}:")
    (request,) = http_receiver.requests()
    assert request.json()["type"] == "alert.test" and request.headers["webhook-id"] == row.key
    assert DeliveryAttempt.objects.get(notification=row).delivered


def test_a_failed_test_notification_is_reported_to_its_sender_only(http_receiver, make_channel):
    http_receiver.answer(401)
    row = delivery.send_test(make_channel("hook", url=http_receiver.url()))

    assert row.status == Notification.Status.DEAD and row.last_status == 401
    assert not Notification.objects.exclude(pk=row.pk).exists()  # no undeliverable alert, no report
