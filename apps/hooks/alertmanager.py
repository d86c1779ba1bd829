"""Alertmanager's webhook (payload version 4) turned into alerts: who may send, what it says, what it changes.

Each receiver has a bearer token (Alertmanager cannot sign its requests), kept as
a SHA-256 digest. A notification is persisted before it is answered: every alert
in it is recorded once by (receiver, groupKey, fingerprint, status, startsAt), so
Alertmanager's retries and repeat_interval re-sends change nothing, and a new one
fires or resolves the alert (source "alertmanager", key = the fingerprint).

Notifications can arrive out of order (a retry that was late, two routes to the
portal, an Alertmanager HA pair). A firing that began before the alert was last seen
to end (its endsAt, in a resolved notification) is old news and changes nothing, nor
does a resolve that ended before the alert was seen firing again. startsAt alone
cannot tell episodes apart: Alertmanager moves it to the earliest start any sender
reported, so the resolve of an episode may carry an earlier startsAt than its firing.
"""

import hashlib
import hmac
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal

import structlog
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from apps.alerts.matchers import LABEL_NAME
from apps.alerts.models import Severity
from apps.alerts.services import MAX_LABELS, AlertError, alert_fire, alert_resolve
from apps.hooks import tokens
from apps.hooks.inbound import HookRejectedError, parse_json
from apps.hooks.models import AlertmanagerDelivery, AlertmanagerReceiver

logger = structlog.get_logger(__name__)

SOURCE = "alertmanager"
TOKEN_PREFIX = "opam_"  # noqa: S105 - the visible start of every receiver token, not a secret
RECEIVER_LABEL = "receiver"  # added to every alert's labels: which portal receiver it came through
FIRING, RESOLVED = "firing", "resolved"
# What teams write in their rules' `severity` label, mapped to the portal's four levels.
SEVERITIES = {
    **dict.fromkeys(("info", "informational", "notice", "low", "none"), Severity.INFO),
    **dict.fromkeys(("warning", "warn", "minor", "medium"), Severity.WARNING),
    **dict.fromkeys(("error", "err", "major", "high"), Severity.ERROR),
    **dict.fromkeys(("critical", "crit", "fatal", "page", "emergency", "disaster"), Severity.CRITICAL),
}
SHOWN_ERRORS = 5  # of a refused payload's problems, in the 400's message


# ---------------------------------------------------------------- the payload


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


def _labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) >= MAX_LABELS:  # one is kept for RECEIVER_LABEL
        raise ValueError(f"at most {MAX_LABELS - 1} labels")
    for name in value:
        if not LABEL_NAME.fullmatch(name):
            raise ValueError(f"{name[:100]!r} is not a label name (a letter or _, then letters, digits, _ . : -)")
    return value


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AlertIn(Payload):
    status: Literal["firing", "resolved"]
    labels: Annotated[dict[str, str], AfterValidator(_labels)]
    annotations: dict[str, str] = {}
    starts_at: Annotated[AwareDatetime, AfterValidator(_utc)] = Field(alias="startsAt")
    ends_at: Annotated[AwareDatetime, AfterValidator(_utc)] | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")


class Notification(Payload):
    """Alertmanager's webhook body, version 4 (fields it adds later are ignored)."""

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field({}, alias="groupLabels")
    common_labels: dict[str, str] = Field({}, alias="commonLabels")
    common_annotations: dict[str, str] = Field({}, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[AlertIn]

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value != "4":
            raise ValueError(f"this hook reads webhook payload version 4, not {str(value)[:20]!r}")
        return value


def notification_parse(data: bytes) -> Notification:
    """The body as a Notification; 400 (saying what is wrong, without echoing values) if it is not one."""
    try:
        return Notification.model_validate(parse_json(data))
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}" for error in exc.errors()]
        more = f" (and {len(problems) - SHOWN_ERRORS} more)" if len(problems) > SHOWN_ERRORS else ""
        message = "Not an Alertmanager webhook payload (version 4): " + "; ".join(problems[:SHOWN_ERRORS]) + more
        raise HookRejectedError(HTTPStatus.BAD_REQUEST, "bad_request", message) from None


# ---------------------------------------------------------------- receivers and their tokens


def receiver_authenticate(name: str, authorization: str) -> AlertmanagerReceiver:
    """The enabled receiver `name` if `authorization` is `Bearer <its token>`; else 404 or 401."""
    receiver = AlertmanagerReceiver.objects.filter(name=name, enabled=True).first()
    if receiver is None:
        raise HookRejectedError(HTTPStatus.NOT_FOUND, "not_found", "There is no enabled receiver of that name.")
    scheme, _, presented = authorization.strip().partition(" ")
    # Digests of equal length compared in constant time: the time taken says nothing about the token.
    if scheme.lower() != "bearer" or not hmac.compare_digest(tokens.digest(presented.strip()), receiver.token_digest):
        raise HookRejectedError(
            HTTPStatus.UNAUTHORIZED, "unauthorized", "Send the receiver's token: Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": 'Bearer realm="alertmanager"'},
        )  # fmt: skip
    return receiver


@transaction.atomic
def receiver_token_new(receiver: AlertmanagerReceiver) -> str:
    """Give the receiver a new token (saving it, or creating it if new); returns the token, never stored.

    The previous token stops working at once.
    """
    token, receiver.token_prefix, receiver.token_digest = tokens.new_secret(TOKEN_PREFIX)
    if receiver.pk is None:
        receiver.save()
    else:
        receiver.save(update_fields=["token_prefix", "token_digest"])
    return token


# ---------------------------------------------------------------- a notification's effect


@dataclass
class Outcome:
    """What one notification changed, alert by alert (the hook's answer)."""

    fired: int = 0
    resolved: int = 0
    duplicates: int = 0  # seen before: a retry or a repeat_interval re-send
    stale: int = 0  # out of order: older than what was seen of the alert already

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def notification_receive(*, receiver: AlertmanagerReceiver, notification: Notification) -> Outcome:
    """Record each alert once and fire or resolve it, all in one transaction (then answer 2xx).

    A database error propagates (the hook answers 503 and Alertmanager retries);
    an alert the engine refuses fails the whole notification, so nothing of it is kept.
    """
    outcome = Outcome()
    group = hashlib.sha256(notification.group_key.encode()).hexdigest()
    # In fingerprint order: two notifications sharing alerts lock their rows in the same order (no deadlock).
    alerts = sorted(notification.alerts, key=lambda alert: (alert.fingerprint, alert.starts_at, alert.status))
    try:
        with transaction.atomic():
            for alert in alerts:
                if not _first_delivery(receiver, group, alert):
                    outcome.duplicates += 1
                elif _stale(alert):
                    outcome.stale += 1
                elif alert.status == FIRING:
                    alert_fire(source=SOURCE, key=alert.fingerprint, **_content(receiver, alert))
                    outcome.fired += 1
                else:
                    alert_resolve(source=SOURCE, key=alert.fingerprint)
                    outcome.resolved += 1
            AlertmanagerReceiver.objects.filter(pk=receiver.pk).update(last_received_at=Now())
    except AlertError as exc:
        raise HookRejectedError(HTTPStatus.BAD_REQUEST, "bad_request", f"An alert was refused: {exc}") from None
    logger.info("alertmanager_notification", receiver=receiver.name, **outcome.as_dict())
    return outcome


def _first_delivery(receiver: AlertmanagerReceiver, group: str, alert: AlertIn) -> bool:
    """Record this alert of this notification; False if it was recorded before."""
    try:
        # A savepoint: on PostgreSQL the transaction goes on after the unique constraint refuses a row.
        with transaction.atomic():
            AlertmanagerDelivery.objects.create(
                receiver=receiver,
                group_key=group,
                fingerprint=alert.fingerprint,
                status=alert.status,
                starts_at=alert.starts_at,
                ends_at=alert.ends_at if alert.status == RESOLVED else None,  # a firing's endsAt is a lease
            )
    except IntegrityError:
        return False
    return True


def _stale(alert: AlertIn) -> bool:
    """A firing the alert was seen resolved after (or in the same episode), or a resolve seen firing again after."""
    seen = AlertmanagerDelivery.objects.filter(fingerprint=alert.fingerprint)  # by any receiver, in any group
    if alert.status == FIRING:
        ended = Q(starts_at=alert.starts_at) | Q(ends_at__gte=alert.starts_at)
        return seen.filter(ended, status=RESOLVED).exists()
    return alert.ends_at is not None and seen.filter(status=FIRING, starts_at__gt=alert.ends_at).exists()


def _content(receiver: AlertmanagerReceiver, alert: AlertIn) -> dict[str, Any]:
    """alert_fire's severity, summary, description and labels for one Alertmanager alert."""
    label = alert.labels.get("severity", "").strip().lower()
    severity = SEVERITIES.get(label) or SEVERITIES.get(receiver.default_severity, Severity.WARNING)
    annotations = dict(alert.annotations)
    summary = annotations.pop("summary", "") or alert.labels.get("alertname", "") or alert.fingerprint
    text = annotations.pop("description", "") or annotations.pop("message", "")
    # The other annotations (runbook_url, dashboard, ...) and the rule's link are what on-call reads next.
    details = [f"{name}: {value}" for name, value in sorted(annotations.items())]
    if alert.generator_url:
        details.append(f"source: {alert.generator_url}")
    description = "\n\n".join(filter(None, [text, "\n".join(details)]))
    labels = {**alert.labels, RECEIVER_LABEL: receiver.name}
    return {"severity": severity, "summary": summary, "description": description, "labels": labels}


def prune(*, older_than: timedelta = timedelta(days=7)) -> int:
    """Forget deliveries received longer ago than `older_than` (database clock); how many went. For the hooks' tick.

    A week is far beyond Alertmanager's retries and its default repeat_interval (4 h):
    a re-sent firing older than that only refreshes the open alert.
    """
    deleted, _ = AlertmanagerDelivery.objects.filter(received_at__lt=Now() - older_than).delete()
    return deleted
