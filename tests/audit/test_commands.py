import csv
import io
import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import DatabaseError
from django.utils import timezone

from apps.audit import chain
from apps.audit.models import AuditCheckpoint, AuditEvent
from apps.audit.services import record

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def old_and_new():
    """30 events 100 days ago, then 20 today."""
    with time_machine.travel(timezone.now() - timedelta(days=100), tick=False):
        for n in range(30):
            record("custom.old", details={"n": n})
        chain.seal()
    for n in range(20):
        record("custom.new", details={"n": n})
    chain.seal()


def test_a_dry_run_says_what_would_go_and_deletes_nothing(old_and_new):
    result = json.loads(run("prune", "--older-than", "90", "--dry-run", "--json"))

    assert (result["events"], result["removed"], result["upto_seq"]) == (30, 0, 30)
    assert AuditEvent.objects.filter(action__startswith="custom.").count() == 50


def test_prune_removes_old_events_in_batches_and_what_remains_still_verifies(old_and_new):
    from apps.audit import services

    result = services.audit_prune(older_than=timedelta(days=90), batch=7)

    assert result["removed"] == 30
    assert not AuditEvent.objects.filter(action="custom.old").exists()
    assert AuditCheckpoint.objects.filter(pruned__gt=0).count() == 5  # 7+7+7+7+2
    assert AuditEvent.objects.filter(action="audit.prune").count() == 1
    steps = list(chain.verify())
    assert steps[-1] == AuditEvent.objects.filter(seq__gt=chain.head_start()).count() and not any(
        isinstance(s, chain.Break) for s in steps
    )


def test_prune_never_removes_events_younger_than_the_limit(old_and_new):
    assert json.loads(run("prune", "--older-than", "200", "--json"))["removed"] == 0
    with pytest.raises((ValueError, DatabaseError), match="younger"):
        chain.prune(AuditEvent.objects.get(action="custom.new", details__n=0).seq, min_age=timedelta(days=90))


@pytest.mark.parametrize("bad", [["--since", "yesterday-ish"], ["--until", "2026-13-45"], ["--format", "xml"]])
def test_export_rejects_bad_input_with_a_usage_error(bad):
    with pytest.raises(CommandError):
        call_command("audit", "export", *bad)


def test_export_streams_jsonl_with_filters_and_is_itself_audited(old_and_new, tmp_path):
    target = tmp_path / "new.jsonl"

    run("export", "--since", "7d", "--action", "custom.new", "--output", str(target))

    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["details"]["n"] for row in rows] == list(range(20))
    exported = AuditEvent.objects.get(action="audit.export")
    assert exported.details["events"] == 20 and exported.details["filters"]["action"] == "custom.new"


def test_export_csv_neutralises_spreadsheet_formulas():
    record("custom.csv", resource=("x", "1", '=HYPERLINK("http://evil")'))
    chain.seal()

    rows = list(csv.DictReader(io.StringIO(run("export", "--format", "csv", "--action", "custom.csv"))))

    assert rows[0]["resource_repr"].startswith("'=")
