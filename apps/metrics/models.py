"""The portal's time series: what is measured (Series), raw samples, rollups, and alert rules on them.

A series is named like a Prometheus series, labels included in the name
(`http.latency.p95{view="admin:index"}`), so one string finds it. Raw samples
are kept for METRICS_RAW_RETENTION_HOURS; rollups of one minute, one hour and
one day (count, sum, min, max, last) for longer; a chart of any range reads the finest
table that still covers it, so it never reads more than a few thousand rows.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.alerts.models import Severity

SERIES_NAME_MAX_LENGTH = 200


class Series(models.Model):
    """One measured quantity, e.g. system.cpu.percent; created by the first sample that names it."""

    name = models.CharField(max_length=SERIES_NAME_MAX_LENGTH, unique=True)
    unit = models.CharField(max_length=20, blank=True, default="", help_text="%, bytes, ms, /s ...")
    help = models.CharField(max_length=200, blank=True, default="")
    last_at = models.DateTimeField(null=True, blank=True, help_text="When its latest sample was taken.")
    last_value = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Sample(models.Model):
    """A raw value at a time: the last METRICS_RAW_RETENTION_HOURS only."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        # Charts and rule windows read one series over a time range; pruning reads `at` alone.
        indexes = [
            models.Index(fields=["series", "at"], name="metrics_sample_series_at"),
            models.Index(fields=["at"], name="metrics_sample_at"),
        ]

    def __str__(self) -> str:
        return f"{self.series_id} @ {self.at:%Y-%m-%d %H:%M:%S}: {self.value:g}"


class Rollup(models.Model):
    """count/sum/min/max/last of a series' samples over one minute, one hour or one day (UTC)."""

    class Resolution(models.IntegerChoices):
        MINUTE = 60, "1 minute"
        HOUR = 3600, "1 hour"
        DAY = 86400, "1 day"  # kept as long as the hourly ones: a year's chart reads 365 rows a series, not 8,760

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="rollups")
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    start = models.DateTimeField(help_text="The bucket's first instant (aligned to its resolution).")
    count = models.PositiveIntegerField()
    total = models.FloatField()
    minimum = models.FloatField()
    maximum = models.FloatField()
    last = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "resolution", "start"], name="metrics_rollup_unique_bucket")
        ]
        indexes = [models.Index(fields=["resolution", "start"], name="metrics_rollup_prune")]

    def __str__(self) -> str:
        return f"{self.series_id} {self.get_resolution_display()} from {self.start:%Y-%m-%d %H:%M}"

    @property
    def average(self) -> float:
        return self.total / self.count


class MetricRule(models.Model):
    """An alert rule on a series: aggregation over a window compared with a threshold, held for `for`."""

    class Aggregation(models.TextChoices):
        AVG = "avg", "average"
        MAX = "max", "maximum"
        MIN = "min", "minimum"
        RATE = "rate", "rate of change per second"
        P95 = "p95", "95th percentile"
        ABSENT = "absent", "seconds since the last sample"

    class Comparison(models.TextChoices):
        GT = ">", "above"
        GE = ">=", "at or above"
        LT = "<", "below"
        LE = "<=", "at or below"

    class State(models.TextChoices):
        OK = "ok", "OK"
        PENDING = "pending", "pending (held less than its `for`)"
        FIRING = "firing", "firing"
        NO_DATA = "no_data", "no data in the window"

    name = models.CharField(max_length=100, unique=True, help_text="Also the alert's key: metrics/<name>.")
    enabled = models.BooleanField(default=True)
    series = models.CharField(max_length=SERIES_NAME_MAX_LENGTH, help_text="The series' full name.")
    aggregation = models.CharField(max_length=8, choices=Aggregation.choices, default=Aggregation.AVG)
    window_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(86400)], help_text="Aggregated over this long."
    )
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField()
    for_seconds = models.PositiveIntegerField(
        "for (seconds)",
        default=0,
        validators=[MaxValueValidator(86400)],
        help_text="How long the condition must hold before the alert fires.",
    )
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    labels = models.JSONField(default=dict, blank=True, help_text="Added to the alert's labels.")
    summary = models.CharField(
        max_length=500,
        help_text="Template: {value}, {threshold}, {series}, {window} (e.g. 'CPU at {value:.0f} %').",
    )
    # Evaluation state, written by the scheduled evaluation only.
    state = models.CharField(max_length=8, choices=State.choices, default=State.OK, editable=False)
    pending_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProcessReport(models.Model):
    """What one portal process (web or worker) measured of itself, written by its reporter every interval.

    A table rather than the cache: it is shared by every process in both run modes
    (the embedded mode's cache is per process, so `manage.py metrics collect` could
    not see runportal's traffic), and the collector can consume a report and mark it
    consumed in the transaction that stores the samples, so no request is counted
    twice nor lost when two collections overlap. One row per process: an UPDATE per
    process per interval; and one row of role "claim", the collector's tick claim
    (apps.metrics.reports.claim_tick).
    """

    key = models.CharField(max_length=100, unique=True, help_text="host:pid:start, unique per process life.")
    role = models.CharField(max_length=20, help_text="web or worker: the series' process label.")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    at = models.DateTimeField(help_text="When the reporter last wrote.")
    # Cumulative since the process started: counters, request counts, latency histograms; gauges.
    payload = models.JSONField(default=dict)
    # The payload as the collector last consumed it, and when it had been reported: the next
    # collection's rates are (payload - consumed) / (at - consumed_at).
    consumed = models.JSONField(default=dict)
    consumed_at = models.DateTimeField(null=True)

    class Meta:
        # The collector reads the live reports; the same index finds the silent ones to delete.
        indexes = [models.Index(fields=["at"], name="metrics_report_at")]

    def __str__(self) -> str:
        return f"{self.role}-{self.pid} ({self.key})"
