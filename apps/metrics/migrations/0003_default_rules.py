"""The metric alert rules a fresh install starts with (issue 7); editable, and gone for good once deleted.

A data migration runs once per database, so a rule an operator deletes is not
created again by a later migrate or upgrade.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

DEFAULT_RULES = [
    {
        "name": "http-5xx-rate",
        "series": "http.5xx.percent",
        "aggregation": "avg",
        "window_seconds": 60,
        "comparison": ">",
        "threshold": 5.0,
        "for_seconds": 300,
        "severity": "warning",
        "summary": "{value:.1f} % of responses are 5xx errors (over {threshold:g} % for 5 minutes)",
    },
    {
        "name": "http-latency-p95",
        "series": "http.latency.p95.ms",
        "aggregation": "avg",
        "window_seconds": 60,
        "comparison": ">",
        "threshold": 1000.0,
        "for_seconds": 120,
        "severity": "warning",
        "summary": "p95 latency is {value:.0f} ms (over {threshold:g} ms for 2 minutes)",
    },
    {
        "name": "memory-high",
        "series": "system.memory.percent",
        "aggregation": "avg",
        "window_seconds": 60,
        "comparison": ">",
        "threshold": 80.0,
        "for_seconds": 60,
        "severity": "critical",
        "summary": "Memory {value:.0f} % used (over {threshold:g} % for a minute)",
    },
    {
        "name": "disk-full",
        "series": "system.disk.percent",
        "aggregation": "max",
        "window_seconds": 60,
        "comparison": ">",
        "threshold": 90.0,
        "for_seconds": 0,
        "severity": "critical",
        "summary": "The database's disk is {value:.0f} % full (over {threshold:g} %)",
    },
    {
        # The dead-man's switch: seconds since the collector's most basic series was last sampled,
        # read from the series row, so it fires while the collector itself is dead. no_data until
        # the first collection ever (a fresh install has not lost its collector).
        "name": "metrics-not-collected",
        "series": "system.cpu.percent",
        "aggregation": "absent",
        "window_seconds": 60,
        "comparison": ">",
        "threshold": 30.0,
        "for_seconds": 0,
        "severity": "critical",
        "summary": "No metrics collected for {value:.0f} s (over {threshold:g} s): is the collector running?",
    },
]


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    rule = apps.get_model("metrics", "MetricRule")
    for fields in DEFAULT_RULES:
        rule.objects.using(schema_editor.connection.alias).get_or_create(name=fields["name"], defaults=fields)


def remove(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    rule = apps.get_model("metrics", "MetricRule")
    rule.objects.using(schema_editor.connection.alias).filter(name__in=[r["name"] for r in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_processreport")]

    operations = [migrations.RunPython(create, remove)]
