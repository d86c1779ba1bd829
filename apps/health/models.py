"""Health state: the endpoints operators watch (HealthTarget), each check's latest state, and its history.

The latest state is one row per check, rewritten by each scheduled run, so
that /health/ and the overview read every check with one query however much
history there is. History is a row per result, pruned after HEALTH_HISTORY_DAYS.
"""

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from apps.core.outbound import validate_outbound_url
from apps.health.checks.base import NAME_MAX_LENGTH, Status

TARGET_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+\]?")
TARGET_PREFIX = "target:"


class HealthTarget(models.Model):
    """An endpoint an operator watches: an HTTP(S) URL, or a TCP host and port."""

    class Kind(models.TextChoices):
        HTTP = "http", "HTTP(S) URL"
        TCP = "tcp", "TCP port"

    class Method(models.TextChoices):
        GET = "GET"
        HEAD = "HEAD"
        POST = "POST"
        OPTIONS = "OPTIONS"

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(TARGET_NAME, "Letters, digits, and _ . - (starting with a letter or digit).")],
        help_text="Short and stable: the check is called target:<name>, and so is its alert.",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.HTTP)
    enabled = models.BooleanField(default=True)
    url = models.CharField(
        "URL", max_length=2000, blank=True, default="", help_text="HTTP(S) targets: http:// or https:// URL."
    )
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GET)
    expected_status = models.PositiveSmallIntegerField(
        default=200,
        validators=[MinValueValidator(100), MaxValueValidator(599)],
        help_text="The HTTP status that means healthy (redirects are not followed).",
    )
    keyword = models.CharField(
        max_length=200, blank=True, default="", help_text="Optional: text that must appear in the body (first 1 MiB)."
    )
    host = models.CharField(max_length=255, blank=True, default="", help_text="TCP targets: host name or IP address.")
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)], help_text="TCP targets."
    )
    is_internal = models.BooleanField(
        "internal destination",
        default=False,
        help_text="Allow loopback and private addresses (never cloud metadata addresses).",
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(60)], help_text="Seconds for the whole check."
    )
    interval_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(5), MaxValueValidator(86400)],
        help_text="Seconds between checks (no more often than HEALTH_INTERVAL_SECONDS).",
    )
    for_seconds = models.PositiveIntegerField(
        "alert after (seconds)",
        null=True,
        blank=True,
        validators=[MaxValueValidator(86400)],
        help_text="How long it must stay bad before an alert fires; empty: HEALTH_FOR_SECONDS.",
    )
    alert_on = models.CharField(
        max_length=16,
        choices=[(Status.CRITICAL.value, "critical"), (Status.WARNING.value, "warning or critical")],
        default=Status.CRITICAL,
    )
    # Threshold overrides; empty: the HEALTH_* setting.
    latency_warning_ms = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    latency_critical_ms = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    cert_warning_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="HTTPS: warn when the certificate expires within this many days."
    )
    cert_critical_days = models.PositiveSmallIntegerField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.kind == self.Kind.HTTP:
            self._clean_http(errors)
        elif self.kind == self.Kind.TCP:
            self._clean_tcp(errors)
        for low, high, what in (
            ("latency_warning_ms", "latency_critical_ms", "the warning latency must not exceed the critical one"),
        ):
            if self.threshold(low) > self.threshold(high):
                errors.setdefault(low, []).append(f"{what} ({self.threshold(low)} > {self.threshold(high)} ms).")
        if self.threshold("cert_critical_days") > self.threshold("cert_warning_days"):
            errors.setdefault("cert_critical_days", []).append(
                "The critical days must not exceed the warning days (critical comes later, closer to expiry)."
            )
        if errors:
            raise ValidationError(errors)

    def _clean_http(self, errors: dict[str, list[str]]) -> None:
        if not self.url.strip():
            errors["url"] = ["An HTTP(S) target needs a URL."]
            return
        self.url = self.url.strip()
        try:
            validate_outbound_url(self.url, allow_internal=self.is_internal)
        except ValidationError as error:
            errors["url"] = list(error.messages)
        if self.host or self.port:
            errors["host"] = ["Host and port are for TCP targets; an HTTP(S) target is given by its URL."]

    def _clean_tcp(self, errors: dict[str, list[str]]) -> None:
        self.host = self.host.strip()
        if not self.host:
            errors["host"] = ["A TCP target needs a host."]
        elif not HOST_NAME.fullmatch(self.host):
            errors["host"] = ["Give a host name or an IP address, without a scheme, port or path."]
        if self.port is None:
            errors["port"] = ["A TCP target needs a port (1-65535)."]
        if self.url or self.keyword:
            errors["url"] = ["URL and keyword are for HTTP(S) targets."]

    @property
    def check_name(self) -> str:
        return f"{TARGET_PREFIX}{self.name}"

    @property
    def address(self) -> str:
        """Where it points, for lists: the URL without its query string, or host:port."""
        if self.kind == self.Kind.TCP:
            return f"{self.host}:{self.port}"
        return self.url.split("?")[0]

    def threshold(self, name: str) -> int:
        """The target's own value of a threshold field, or the setting's."""
        own = getattr(self, name)
        return own if own is not None else getattr(settings, _SETTING[name])


_SETTING = {
    "latency_warning_ms": "HEALTH_LATENCY_WARNING_MS",
    "latency_critical_ms": "HEALTH_LATENCY_CRITICAL_MS",
    "cert_warning_days": "HEALTH_CERT_WARNING_DAYS",
    "cert_critical_days": "HEALTH_CERT_CRITICAL_DAYS",
}


class CheckState(models.Model):
    """The latest result of one check, and what alerting needs to remember about it."""

    name = models.CharField(max_length=NAME_MAX_LENGTH, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(default=0)
    checked_at = models.DateTimeField()
    since = models.DateTimeField(help_text="When the current status began.")
    bad_since = models.DateTimeField(
        null=True, blank=True, help_text="Since when it has been at or above its alert level (for the `for` rule)."
    )
    alerted = models.BooleanField(default=False, help_text="An alert is open for it.")

    class Meta:
        ordering = ["name"]
        verbose_name = "check state"
        verbose_name_plural = "overview"  # the admin's entry for the tiles page (admin_pages)

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; the keys of Result.as_dict() plus since and alerted."""
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "latency_ms": round(self.latency_ms, 1),
            "details": self.details,
            "checked_at": self.checked_at.isoformat(),
            "since": self.since.isoformat(),
            "alerted": self.alerted,
        }


class CheckResult(models.Model):
    """One result of one check (history)."""

    name = models.CharField(max_length=NAME_MAX_LENGTH)
    status = models.CharField(max_length=16, choices=Status.choices)
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(default=0)
    checked_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["name", "-checked_at"], name="health_result_history"),  # one check's history
            models.Index(fields=["checked_at"], name="health_result_age"),  # pruning
        ]
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.status} at {self.checked_at:%Y-%m-%d %H:%M:%S}"
