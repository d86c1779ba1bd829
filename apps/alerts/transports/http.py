"""POSTing a notification through the portal's SSRF-guarded client, and what an HTTP answer means for delivery."""

import email.utils
from collections.abc import Mapping
from datetime import UTC

from django.conf import settings
from django.utils import timezone

from apps.alerts.models import NotificationChannel
from apps.alerts.transports.base import ChannelError, Outcome
from apps.core import outbound
from apps.core.redaction import redact

MAX_REPLY_BYTES = 64 * 1024  # receivers answer with a word or two; the rest is not read
SNIPPET = 200  # characters of the answer kept in the error, for whoever looks at a failure


def post(channel: NotificationChannel, body: bytes, headers: Mapping[str, str]) -> Outcome:
    """POST body (JSON) to the channel's URL; redirects are not followed, a slow receiver is cut off."""
    if not channel.url:
        raise ChannelError("the channel has no URL")
    try:
        response = outbound.request(
            "POST",
            channel.url,
            headers={**headers, "Content-Type": "application/json"},
            content=body,
            allow_internal=channel.internal,
            follow_redirects=False,
            timeout=settings.ALERTS_DELIVERY_TIMEOUT_SECONDS,
            max_body_bytes=MAX_REPLY_BYTES,
        )
    except outbound.OutboundBlocked as error:  # the URL or its address is refused: fix the channel
        return Outcome.permanent(f"blocked: {error.reason}")
    except outbound.OutboundTimeout as error:  # a slow receiver, cut off: it may be quicker next time
        return Outcome.transient(error.reason)
    except outbound.OutboundError as error:  # refused, reset, TLS or a garbled answer: may pass too
        return Outcome.transient(f"no response: {error.reason}")
    return judge(response)


def judge(response: outbound.OutboundResponse) -> Outcome:
    """2xx is delivered; 429 and 5xx are worth a retry (after Retry-After); a redirect and other 4xx are final."""
    status = response.status
    if 200 <= status < 300:
        return Outcome.success(status)
    if 300 <= status < 400:
        location = redact(response.headers.get("location", "").split("?")[0].split("#")[0])[:300]
        return Outcome.permanent(f"redirect to {location or '(no Location)'} not followed", status=status)
    reply = " ".join(response.text[:SNIPPET].split())
    error = f"HTTP {status}{f': {reply}' if reply else ''}"
    if status == 429 or 500 <= status < 600:
        return Outcome.transient(error, status=status, retry_after=retry_after(response.headers.get("retry-after")))
    return Outcome.permanent(error, status=status)


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for, given as seconds or as an HTTP date; None when absent or unreadable."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP date is GMT by definition
    return max(0.0, (when - timezone.now()).total_seconds())
