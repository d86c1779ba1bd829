"""Notification transports: one module per kind of channel, all HTTP through apps.core.outbound.

delivery.py asks for_channel(channel).send(notification) once per attempt and
decides from the Outcome; a transport never retries, sleeps or writes rows
(the webhook's first use of an empty secret aside: it stores the one it makes).
Apprise is not used: the three kinds the issue needs are a few lines each here,
and every other service would bring its own HTTP stack past the SSRF guard.
"""

from apps.alerts.models import NotificationChannel
from apps.alerts.transports.base import ChannelError, Outcome, Transport
from apps.alerts.transports.mail import EmailTransport
from apps.alerts.transports.slack import SlackTransport
from apps.alerts.transports.webhook import WebhookTransport

TRANSPORTS: dict[str, type[Transport]] = {
    transport.kind: transport for transport in (EmailTransport, SlackTransport, WebhookTransport)
}


def for_channel(channel: NotificationChannel) -> Transport:
    try:
        return TRANSPORTS[channel.kind](channel)
    except KeyError:
        raise ChannelError(f"no transport for channel kind {channel.kind!r}") from None


__all__ = ["TRANSPORTS", "ChannelError", "Outcome", "Transport", "for_channel"]
