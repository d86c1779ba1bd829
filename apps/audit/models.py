"""The audit trail: append-only events, sealed into a SHA-256 hash chain."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete audit events through the ORM."""


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        raise AppendOnlyError("audit events cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted; `manage.py audit prune` removes old ones")

    def bulk_update(self, objs: object, fields: object, batch_size: int | None = None) -> int:
        raise AppendOnlyError("audit events cannot be updated")


class AuditEvent(models.Model):
    """Who did what, when, from where.

    Rows are written by audit.record() and by database triggers on registered
    models (so no code path escapes), then sealed in order by chain.seal():
    `seq` is the event's place in the chain and `hash` covers its content and
    the previous event's hash. Unsealed events (seq is null) are seconds old.
    """

    timestamp = models.DateTimeField(db_default=Now(), db_index=True)
    seq = models.BigIntegerField(null=True, unique=True, editable=False)
    # Kept (not nulled) when the user is deleted: no constraint, no cascade.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, db_default="")
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_default=Outcome.SUCCESS)
    resource_type = models.CharField(max_length=100, db_default="")
    resource_id = models.CharField(max_length=64, db_default="")
    resource_repr = models.CharField(max_length=200, db_default="")
    changes = models.JSONField(db_default={})
    details = models.JSONField(db_default={})
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, db_default="")
    request_id = models.CharField(max_length=128, db_default="", db_index=True)
    prev_hash = models.CharField(max_length=64, db_default="", editable=False)
    hash = models.CharField(max_length=64, db_default="", editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            # The admin's filters, newest first.
            models.Index(fields=["action", "-timestamp"], name="audit_action_time"),
            models.Index(fields=["actor_username", "-timestamp"], name="audit_actor_time"),
            models.Index(fields=["resource_type", "resource_id"], name="audit_resource"),
            models.Index(fields=["outcome", "-timestamp"], name="audit_outcome_time"),
            models.Index(fields=["ip", "-timestamp"], name="audit_ip_time"),  # a search for an address
            # The sealer's queue: only the few unsealed rows.
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_unsealed"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_username or 'system'} at {self.timestamp:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("audit events cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events cannot be deleted; `manage.py audit prune` removes old ones")


class AuditCheckpoint(models.Model):
    """Where the chain starts after a prune: the last pruned event's place and hash."""

    seq = models.BigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    pruned = models.BigIntegerField(help_text="Events removed by this prune.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-seq"]
        get_latest_by = "seq"

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"
