"""Signed generic events (Standard Webhooks): stored once per webhook-id, mapped to alerts, pruned.

The view (apps.hooks.views.events) verifies the signature and parses the body;
event_receive() then stores the event and fires or resolves its alert in one
transaction, so an event is never half taken. Its alerts have the source
"events:<endpoint name>" and the key the endpoint's mapping reads from the event
(apps.hooks.mapping): routes and silences can match one endpoint's alerts by source.

Deduplication: the (endpoint, webhook-id) pair is unique. A sender retries
with the same id, so a retry, or a replay of a captured delivery within the
timestamp tolerance, finds its stored message and changes nothing. prune()
therefore keeps every message at least twice the tolerance: a timestamp may be
up to one tolerance in the future when the message arrives, and is accepted up
to one tolerance after that.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from apps.alerts.services import AlertError, alert_fire, alert_resolve
from apps.core import standard_webhooks
from apps.hooks import mapping
from apps.hooks.models import WebhookEndpoint, WebhookMessage

SOURCE_PREFIX = "events:"
SOURCE_MAX_LENGTH = WebhookMessage._meta.get_field("alert_source").max_length  # as Alert.source
NAME_MAX_LENGTH = SOURCE_MAX_LENGTH - len(SOURCE_PREFIX)
MAX_SECRET_OVERLAP = timedelta(days=30)
RECEIVED_RECORDED_EVERY = timedelta(seconds=60)  # an endpoint's "last received", to the minute


class EventError(ValueError):
    """The event is refused (400, nothing stored); the message names what is missing or wrong."""


@dataclass(frozen=True)
class Received:
    message: WebhookMessage
    duplicate: bool  # the webhook-id was stored already: nothing was done this time


def alert_source(endpoint: WebhookEndpoint) -> str:
    return f"{SOURCE_PREFIX}{endpoint.name}"


def event_receive(*, endpoint: WebhookEndpoint, message_id: str, sent_at: datetime, payload: Any) -> Received:
    """Store a verified event and fire or resolve its alert as the mapping says, in one transaction.

    A webhook-id already stored for this endpoint changes nothing (duplicate).
    EventError when the mapping is invalid or the event lacks what its type
    needs; nothing is stored then, so the sender's retry is taken once fixed.

    The message's INSERT comes first in the transaction and its unique pair decides a duplicate: no
    look-up before, no savepoint (a refused INSERT rolls back a transaction that has done nothing else).
    """
    try:
        mapped, source = _map(endpoint, payload)
    except EventError:
        earlier = _stored(endpoint, message_id)
        if earlier is not None:  # a replay is accepted even if the mapping changed since
            return Received(earlier, duplicate=True)
        raise
    try:
        with transaction.atomic():
            try:
                message = WebhookMessage.objects.create(
                    endpoint=endpoint, message_id=message_id, sent_at=sent_at, event_type=mapped.event_type,
                    payload=payload, outcome=mapped.outcome, alert_source=source, alert_key=mapped.key,
                )  # fmt: skip
            except IntegrityError as error:
                raise _Refused(error) from None
            if mapped.outcome == WebhookMessage.Outcome.FIRED:
                alert_fire(source=source, key=mapped.key, **mapped.alert)
            elif mapped.outcome == WebhookMessage.Outcome.RESOLVED:
                alert_resolve(source=source, key=mapped.key)
            _record_received(endpoint)
    except _Refused as refused:
        earlier = _stored(endpoint, message_id)
        if earlier is None:  # not the unique pair: the endpoint was deleted meanwhile
            raise refused.error from None
        return Received(earlier, duplicate=True)  # a retry, a replay, or the same id delivered concurrently
    except AlertError as error:
        raise EventError(f"the alert was refused: {error}") from None
    return Received(message, duplicate=False)


class _Refused(Exception):  # noqa: N818 - carries the IntegrityError out of the rolled-back transaction
    def __init__(self, error: IntegrityError) -> None:
        self.error = error


def _stored(endpoint: WebhookEndpoint, message_id: str) -> WebhookMessage | None:
    return WebhookMessage.objects.filter(endpoint=endpoint, message_id=message_id).first()


def _record_received(endpoint: WebhookEndpoint) -> None:
    """last_received_at, written at most once a minute: an UPDATE of the endpoint's row for every event cost two
    statements (with the audit context) and made the events of one endpoint wait for each other's commits."""
    last = endpoint.last_received_at
    if last is None or timezone.now() - last >= RECEIVED_RECORDED_EVERY:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_received_at=Now())


def _map(endpoint: WebhookEndpoint, payload: Any) -> tuple[mapping.Mapped, str]:
    """What the event does, and the source of its alert ("" for an event only stored); EventError if it can't."""
    try:
        mapped = mapping.parse(endpoint.mapping).apply(payload)
    except mapping.InvalidMappingError as error:
        raise EventError(f"the endpoint's mapping is invalid (fix it in the admin): {error}") from None
    except mapping.MappingError as error:
        raise EventError(str(error)) from None
    if mapped.outcome == WebhookMessage.Outcome.STORED:
        return mapped, ""
    source = alert_source(endpoint)
    if len(source) > SOURCE_MAX_LENGTH:  # only for a name longer than the admin allows
        raise EventError(f"the endpoint's name is too long for an alert source (at most {NAME_MAX_LENGTH} characters)")
    return mapped, source


def endpoint_rotate_secret(endpoint: WebhookEndpoint, *, keep_previous_for: timedelta) -> str:
    """A new secret, returned to be shown once; the current one keeps verifying for `keep_previous_for`.

    Zero stops the current secret at once (it leaked). A secret kept from an
    earlier rotation stops now: two secrets at most are active.
    """
    if not timedelta(0) <= keep_previous_for <= MAX_SECRET_OVERLAP:
        raise EventError(f"the old secret may be kept from 0 to {MAX_SECRET_OVERLAP.days} days")
    secret = standard_webhooks.new_secret()
    with transaction.atomic():
        row = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        keep = keep_previous_for > timedelta(0)
        row.previous_secret = row.secret if keep else ""
        row.previous_secret_expires_at = timezone.now() + keep_previous_for if keep else None
        row.secret = secret
        row.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return secret


def prune(*, older_than: timedelta) -> int:
    """Delete the messages received longer ago than `older_than` (database clock); returns how many.

    Never younger than twice the timestamp tolerance, whatever `older_than`
    says: a replay must find its message. For the hooks' tick.
    """
    keep = max(older_than, 2 * timedelta(seconds=settings.HOOKS_TIMESTAMP_TOLERANCE_SECONDS))
    deleted, _ = WebhookMessage.objects.filter(received_at__lt=Now() - keep).delete()
    return deleted
