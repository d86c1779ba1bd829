"""The incident engine's state: alerts and their timelines, where notifications go, and the outbox.

Producers call services.alert_fire() / alert_resolve() by (source, key); everything
after that (silences, routing, grouping, escalation, reminders, delivery) is
decided from these rows, so that a crash at any point loses nothing: the
database, not the broker, is the source of truth.
"""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from apps.core import standard_webhooks


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class State(models.TextChoices):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(models.Model):
    """One thing that can be wrong, identified by (source, key); each firing after a resolve is a new episode."""

    source = models.CharField(max_length=100, help_text="Who raises it: health, metrics, backups, hooks, cli ...")
    key = models.CharField(max_length=200, help_text="What it is about, unique within the source.")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    summary = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    labels = models.JSONField(default=dict, blank=True)
    value = models.JSONField(null=True, blank=True, help_text="The observed value, when there is one.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.FIRING)
    episode = models.PositiveIntegerField(default=1)
    fire_count = models.PositiveIntegerField(default=1, help_text="alert_fire calls in this episode.")
    started_at = models.DateTimeField(help_text="When this episode began.")
    last_fired_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    silenced_by = models.ForeignKey(
        "Silence",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The silence that matched when the episode began: it is recorded, nobody is told.",
    )
    route = models.ForeignKey("Route", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    group_key = models.CharField(max_length=64, blank=True, default="")
    # The schedule, kept here so that a tick finds due work with one indexed query.
    notify_at = models.DateTimeField(null=True, blank=True, help_text="End of group_wait: first notification due.")
    escalate_at = models.DateTimeField(null=True, blank=True, help_text="Next escalation step due.")
    escalation_step = models.PositiveSmallIntegerField(default=0, help_text="Steps notified so far.")
    remind_at = models.DateTimeField(null=True, blank=True, help_text="Next reminder due.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="alerts_alert_fingerprint")]
        indexes = [
            models.Index(fields=["state", "-last_fired_at"], name="alerts_alert_state"),
            models.Index(fields=["notify_at"], condition=models.Q(notify_at__isnull=False), name="alerts_due_notify"),
            # A group's waiting first notification (a new alert joins it) and the group's due alerts (the tick).
            models.Index(
                fields=["route", "group_key", "notify_at"],
                condition=models.Q(notify_at__isnull=False),
                name="alerts_group_waiting",
            ),
            models.Index(
                fields=["escalate_at"], condition=models.Q(escalate_at__isnull=False), name="alerts_due_escalate"
            ),
            models.Index(fields=["remind_at"], condition=models.Q(remind_at__isnull=False), name="alerts_due_remind"),
        ]
        ordering = ["-last_fired_at"]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.source}/{self.key}: {self.summary}"

    @property
    def fingerprint(self) -> str:
        return f"{self.source}/{self.key}"

    @property
    def is_open(self) -> bool:
        return self.state != State.RESOLVED


class Transition(models.Model):
    """A line of an alert's timeline."""

    class Kind(models.TextChoices):
        FIRED = "fired"
        REFIRED = "refired", "fired again"
        SILENCED = "silenced"
        UNROUTED = "unrouted", "no route"
        NOTIFIED = "notified"
        ESCALATED = "escalated"
        REMINDED = "reminded"
        ACKNOWLEDGED = "acknowledged"
        UNACKNOWLEDGED = "unacknowledged"
        RESOLVED = "resolved"
        SEVERITY = "severity", "severity changed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="transitions")
    episode = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(db_default=Now())
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, default="")
    comment = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["alert", "at"], name="alerts_transition_alert")]

    def __str__(self) -> str:
        return f"{self.alert.fingerprint} {self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"


class NotificationChannel(models.Model):
    """Where notifications go: an e-mail list, a Slack incoming webhook, or a signed generic webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email", "e-mail"
        SLACK = "slack", "Slack"
        WEBHOOK = "webhook", "webhook"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    recipients = models.TextField(
        blank=True, default="", help_text="E-mail: addresses, one per line or comma-separated."
    )
    # Not a URLField: its validator refuses single-label hosts (http://receiver:8080/); the form checks with
    # the outbound guard instead.
    url = models.CharField(max_length=1000, blank=True, default="", help_text="Slack or webhook: the URL to POST to.")
    secret = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Webhook: the Standard Webhooks secret (whsec_...); generated when left empty.",
    )
    headers = models.JSONField(default=dict, blank=True, help_text="Webhook: extra HTTP headers, as a JSON object.")
    internal = models.BooleanField(
        default=False,
        verbose_name="internal destination",
        help_text="Allow a private or loopback address. Only for receivers inside your own network.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        default=30, help_text="At most this many notifications a minute; the rest wait their turn (0: no limit)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.kind == self.Kind.WEBHOOK and not self.secret:  # the receiver is told it from the admin page
            self.secret = standard_webhooks.new_secret()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "secret"}
        super().save(*args, **kwargs)


class EscalationPolicy(models.Model):
    """Ordered steps: notify these channels; if still unacknowledged after N minutes, notify those."""

    name = models.CharField(max_length=100, unique=True)
    repeat = models.PositiveSmallIntegerField(
        default=0, help_text="After the last step, run the steps again this many times while unacknowledged."
    )
    repeat_delay_minutes = models.PositiveIntegerField(
        default=30, help_text="With repeats: minutes after the last step before the first step again."
    )

    class Meta:
        verbose_name_plural = "escalation policies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    delay_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes after the previous step (the first step: after group_wait)."
    )
    channels = models.ManyToManyField(NotificationChannel, related_name="+")

    class Meta:
        ordering = ["policy", "position", "id"]

    def __str__(self) -> str:
        return f"{self.policy} step {self.position + 1}"


class Route(models.Model):
    """Which policy an alert follows: the first route (by position) whose matchers all match; else the default."""

    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveSmallIntegerField(default=0)
    is_default = models.BooleanField(default=False, help_text="Used when no other route matches.")
    severities = models.JSONField(default=list, blank=True, help_text="Severities it matches; empty: any.")
    matchers = models.JSONField(
        default=list,
        blank=True,
        help_text='All must match, e.g. ["team=payments", "env!=staging", "service=~api-.*"].',
    )
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.PROTECT, related_name="routes")
    group_by = models.JSONField(
        default=list, blank=True, help_text='Labels whose values group alerts into one notification, e.g. ["service"].'
    )
    group_wait_seconds = models.PositiveIntegerField(
        default=30, help_text="Wait this long for more alerts of the group before the first notification."
    )
    repeat_interval_minutes = models.PositiveIntegerField(
        default=240, help_text="Remind every this many minutes while firing and unacknowledged (0: never)."
    )

    class Meta:
        ordering = ["is_default", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="alerts_route_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Silence(models.Model):
    """Matching alerts are recorded and shown as silenced, but notify nobody, between starts_at and ends_at.

    With a repeat, the window comes back every day or week (a maintenance window),
    in the portal's time zone, until repeat_until.
    """

    class Repeat(models.TextChoices):
        NONE = "", "once"
        DAILY = "daily"
        WEEKLY = "weekly"

    matchers = models.JSONField(help_text='All must match, e.g. ["source=health", "key=~db-.*", "env=staging"].')
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    repeat = models.CharField(max_length=8, choices=Repeat.choices, blank=True, default=Repeat.NONE)
    repeat_until = models.DateTimeField(null=True, blank=True)
    comment = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"silence {', '.join(self.matchers)} ({self.comment[:40]})"


class RoutingStamp(models.Model):
    """One row whose stamp changes with every route and silence, in the same transaction.

    Producers keep routes and silences in memory and read the stamp along with
    every alert they write: a stamp that is not the one they loaded with means
    a change, and they load again (apps.alerts.routing).
    """

    stamp = models.UUIDField()

    def __str__(self) -> str:
        return str(self.stamp)


class Notification(models.Model):
    """The outbox: one message to one channel, written in the transaction of the change it reports.

    Delivery claims a row with a lease, sends it with the row's idempotency key,
    and finishes it only while still holding the lease (a stale worker's result
    is ignored); a sweeper re-dispatches rows whose lease expired.
    """

    class Kind(models.TextChoices):
        FIRING = "firing"
        ESCALATION = "escalation"
        REMINDER = "reminder"
        RESOLVED = "resolved"
        DEAD_LETTER = "dead_letter", "dead letter report"
        TEST = "test"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead"

    key = models.CharField(max_length=200, unique=True, help_text="Idempotency key, the same on every attempt.")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    alerts = models.ManyToManyField(Alert, related_name="notifications", blank=True)
    payload = models.JSONField(help_text="What is sent, rendered when the row was written.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="alerts_outbox_due"),
            models.Index(fields=["channel", "-created_at"], name="alerts_outbox_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.channel} ({self.status})"


class DeliveryAttempt(models.Model):
    """One try at sending a notification: what came back, or what went wrong."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    worker = models.CharField(max_length=64, blank=True, default="", help_text="The lease owner that tried.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    delivered = models.BooleanField(default=False)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["at"], name="alerts_attempt_at")]  # the rate limit counts the last minute

    def __str__(self) -> str:
        return f"attempt on {self.notification_id} at {self.at:%H:%M:%S}"
