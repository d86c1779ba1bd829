"""A generic webhook: JSON signed the Standard Webhooks way, so receivers verify it with any of its libraries.

Headers: webhook-id (the notification's idempotency key, the same on every
attempt), webhook-timestamp (this attempt, unix seconds) and webhook-signature,
"v1," + base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with the
bytes of the channel's whsec_ secret.
"""

import json
import re
from typing import Any

from django.utils import timezone

from apps.alerts.models import Notification, NotificationChannel
from apps.alerts.transports import http
from apps.alerts.transports.base import ChannelError, Outcome, Transport
from apps.core import standard_webhooks
from apps.core.standard_webhooks import sign

# What the signature and the framing of the request depend on: a channel's own headers may not set them.
RESERVED = frozenset({"content-type", "content-length", "transfer-encoding", "connection", "host", "idempotency-key"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
HEADER_VALUE = re.compile(r"[^\x00-\x1f\x7f]*")  # no CR, LF or other control characters (tab aside)


class WebhookTransport(Transport):
    kind = NotificationChannel.Kind.WEBHOOK

    def send(self, notification: Notification) -> Outcome:
        body = json.dumps(
            {
                "type": f"alert.{notification.kind}",
                "timestamp": notification.created_at.isoformat(),  # when it happened: the same on every attempt
                "data": notification.payload,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timestamp = int(timezone.now().timestamp())
        headers = {
            **custom_headers(self.channel.headers),
            "Idempotency-Key": notification.key,
            "webhook-id": notification.key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(signing_key(self.channel), notification.key, timestamp, body),
        }
        return http.post(self.channel, body, headers)


def signing_key(channel: NotificationChannel) -> bytes:
    """The secret's bytes; a channel saved without a secret gets one now, kept so that its receiver can be told."""
    if not channel.secret:
        NotificationChannel.objects.filter(pk=channel.pk, secret="").update(secret=standard_webhooks.new_secret())
        channel.secret = NotificationChannel.objects.values_list("secret", flat=True).get(pk=channel.pk)
    try:
        return standard_webhooks.secret_key(channel.secret)
    except ValueError as error:
        raise ChannelError(str(error)) from None


def custom_headers(headers: Any) -> dict[str, str]:
    """The channel's own headers, refused whole if any would change the signed request or its framing."""
    if not isinstance(headers, dict):
        raise ChannelError("headers must be a JSON object of names to text values")
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise ChannelError(f"{name!r} is not a valid header name")
        if name.lower() in RESERVED or name.lower().startswith("webhook-"):
            raise ChannelError(f"the {name} header is set by the portal and cannot be overridden")
        if not isinstance(value, str) or not HEADER_VALUE.fullmatch(value):
            raise ChannelError(f"the value of {name} must be text on one line")
    return dict(headers)
