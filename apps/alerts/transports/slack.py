"""A Slack incoming webhook: the payload as Slack mrkdwn text."""

import json
from typing import Any

from apps.alerts.models import Notification, NotificationChannel
from apps.alerts.transports import http
from apps.alerts.transports.base import Outcome, Transport


class SlackTransport(Transport):
    kind = NotificationChannel.Kind.SLACK

    def send(self, notification: Notification) -> Outcome:
        body = json.dumps({"text": text(notification.payload)}, ensure_ascii=False).encode()
        return http.post(self.channel, body, {"Idempotency-Key": notification.key})


def text(payload: dict[str, Any]) -> str:
    """A bold title, then a line per alert linking to its page when the portal's address is known."""
    lines = [f"*{escape(payload['title'])}*"]
    if not payload.get("alerts"):
        return "\n".join([*lines, escape(payload["text"])])
    for alert in payload["alerts"]:
        line = f"• [{alert['severity']}] {alert['source']}/{alert['key']}: {alert['summary']}"
        link = alert["url"] if alert["url"].startswith(("https://", "http://")) else ""
        lines.append(f"{escape(line)} <{link}|open>" if link else escape(line))
    return "\n".join(lines)


def escape(text: str) -> str:
    """Slack reads <...> as links and mentions, so text from alerts has them escaped (Slack's own rule)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
