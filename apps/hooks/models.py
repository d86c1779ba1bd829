"""What other tools use to reach the portal: API tokens, Alertmanager receivers, signed event
endpoints and heartbeats, with the rows that make their deliveries idempotent.

Secrets a caller presents (API tokens, Alertmanager bearer tokens) are stored as
SHA-256 digests: they are 256-bit random strings, so a fast hash is enough, and
a leaked table gives nothing to replay. The Standard Webhooks signing secrets
must be kept as they are, since verifying needs them; they are redacted in the
audit trail and the logs like every secret.
"""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class Scope(models.TextChoices):
    READ = "read"
    WRITE = "write"  # read and write


class ApiToken(models.Model):
    """A bearer token for /api/v1/: acts as its user, limited to its scope, until it expires or is revoked."""

    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'ci-deploy' or 'grafana'.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token (hex).")
    created_at = models.DateTimeField(db_default=Now())
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, scope: str) -> bool:
        return scope == Scope.READ or self.scope == Scope.WRITE


class AlertmanagerReceiver(models.Model):
    """One Alertmanager webhook receiver: POSTs to /hooks/alertmanager/<name>/ with its bearer token."""

    name = models.SlugField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    token_prefix = models.CharField(max_length=16, blank=True, default="")
    token_digest = models.CharField(max_length=64, help_text="SHA-256 of the bearer token (hex).")
    default_severity = models.CharField(
        max_length=16, default="warning", help_text="For alerts without a 'severity' label the portal knows."
    )
    created_at = models.DateTimeField(db_default=Now())
    last_received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertmanagerDelivery(models.Model):
    """One alert of one Alertmanager notification, seen once: the key Alertmanager's retries repeat."""

    receiver = models.ForeignKey(AlertmanagerReceiver, on_delete=models.CASCADE, related_name="deliveries")
    group_key = models.CharField(max_length=64, help_text="SHA-256 of the notification's groupKey (hex).")
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    starts_at = models.DateTimeField()
    # Alertmanager moves startsAt to the earliest any sender reported (a Prometheus HA pair), so the
    # episode a late notification belongs to is told by when the alert was seen to end.
    ends_at = models.DateTimeField(null=True, blank=True, help_text="A resolved alert's endsAt.")
    received_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["receiver", "group_key", "fingerprint", "status", "starts_at"],
                name="hooks_alertmanager_delivery_once",
            )
        ]
        indexes = [
            # The prune deletes by age.
            models.Index(fields=["received_at"], name="hooks_am_delivery_received"),
            # Out of order: was this alert (any receiver, any group) seen resolved, or firing again, since?
            models.Index(fields=["fingerprint", "status"], name="hooks_am_delivery_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint} {self.status}"


class WebhookEndpoint(models.Model):
    """A Standard Webhooks receiver at /hooks/events/<name>/; its mapping turns events into alerts.

    Two secrets may be active at once while a sender rotates: `secret` and, until
    `previous_secret_expires_at`, `previous_secret`.
    """

    name = models.SlugField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=200, help_text="whsec_<base64>: the signing secret the sender holds.")
    previous_secret = models.CharField(max_length=200, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    mapping = models.JSONField(default=dict, blank=True, help_text="Which event types fire or resolve which alert.")
    created_at = models.DateTimeField(db_default=Now())
    last_received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookMessage(models.Model):
    """A verified event, kept once per webhook-id (a replay finds it and creates nothing)."""

    class Outcome(models.TextChoices):
        FIRED = "fired"
        RESOLVED = "resolved"
        STORED = "stored"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    message_id = models.CharField(max_length=200, help_text="The sender's webhook-id.")
    sent_at = models.DateTimeField(help_text="The sender's webhook-timestamp.")
    received_at = models.DateTimeField(db_default=Now())
    event_type = models.CharField(max_length=200, blank=True, default="")
    payload = models.JSONField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    alert_source = models.CharField(max_length=100, blank=True, default="")
    alert_key = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "message_id"], name="hooks_webhook_message_once"),
        ]
        indexes = [models.Index(fields=["received_at"], name="hooks_webhook_received")]

    def __str__(self) -> str:
        return self.message_id


class Heartbeat(models.Model):
    """A dead-man's switch: a job pings /hooks/heartbeat/<uuid> when it runs; silence past the deadline alerts.

    The schedule is either a period or a cron expression in a time zone, plus a
    grace. `deadline` is when the next ping is overdue (database clock), kept here
    so the tick finds late heartbeats with one indexed query.
    """

    class Status(models.TextChoices):
        NEW = "new"  # never pinged
        UP = "up"
        STARTED = "started"  # /start seen, the run not finished yet
        LATE = "late"  # past its deadline: alert firing
        FAILED = "failed"  # /fail seen: alert firing

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    period_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Expected time between pings; empty when a cron expression is set."
    )
    cron = models.CharField(
        max_length=100, blank=True, default="", help_text="e.g. '0 3 * * *'; empty: use the period."
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="The cron expression's time zone.")
    grace_seconds = models.PositiveIntegerField(default=300, help_text="How late a ping may be before it alerts.")
    max_runtime_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="After /start, the success ping must come within this; empty: no limit."
    )
    severity = models.CharField(max_length=16, default="error")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    last_ping_at = models.DateTimeField(null=True, blank=True)
    last_start_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text="When silence becomes late (database clock).")
    created_at = models.DateTimeField(db_default=Now())
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        indexes = [
            # The tick: enabled heartbeats whose deadline has passed.
            models.Index(fields=["deadline"], condition=models.Q(enabled=True), name="hooks_heartbeat_due"),
        ]

    def __str__(self) -> str:
        return self.name


class HeartbeatPing(models.Model):
    class Kind(models.TextChoices):
        SUCCESS = "success"
        START = "start"
        FAIL = "fail"

    heartbeat = models.ForeignKey(Heartbeat, on_delete=models.CASCADE, related_name="pings")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    at = models.DateTimeField(db_default=Now())
    method = models.CharField(max_length=8)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    body = models.TextField(blank=True, default="", help_text="The first 10 kB of the request body.")

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["heartbeat", "-at"], name="hooks_heartbeat_pings")]

    def __str__(self) -> str:
        return f"{self.heartbeat_id} {self.kind} {self.at}"
