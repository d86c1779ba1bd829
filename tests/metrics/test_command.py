"""`manage.py metrics collect | series | prune`: output, JSON, exit statuses, clear errors."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.metrics.models import Sample
from tests.services import manage, subprocess_env

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("metrics", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


def test_collect_stores_one_tick_and_prints_its_values():
    code, out = run("collect")

    assert code == 0
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert 0 <= float(lines["system.memory.percent"]) <= 100
    assert 0 <= float(lines["system.cpu.percent"]) <= 100  # primed: a rate even on the first tick
    assert Sample.objects.filter(series__name="system.memory.percent").count() == 1


def test_collect_json_has_the_time_the_values_and_each_collectors_cost():
    code, out = run("collect", "--json")

    data = json.loads(out)
    assert code == 0 and data["at"] > 0
    assert "db.query.ms" in data["values"] and data["timings_ms"]["database"] >= 0


def test_series_lists_the_last_value_and_its_age():
    run("collect")

    code, out = run("series", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["system.memory.percent"]["unit"] == "%" and rows["system.memory.percent"]["age_seconds"] >= 0

    code, out = run("series", "--prefix", "system.memory")
    assert out.splitlines()[0].split() == ["SERIES", "UNIT", "LAST", "VALUE", "AGE"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["system.memory.percent"]


def test_series_exits_1_when_there_is_none():
    assert run("series")[0] == 1


def test_prune_dry_run_counts_and_prune_deletes():
    assert json.loads(run("prune", "--dry-run", "--json")[1]) == {
        "dry_run": True, "rows": {"raw": 0, "minute": 0, "hour": 0, "day": 0}}  # fmt: skip
    assert run("prune")[1].startswith("deleted 0 raw samples")


def test_no_subcommand_is_a_usage_error():
    with pytest.raises(CommandError, match=r"collect \| series \| prune") as error:
        call_command("metrics")
    assert error.value.returncode == 2


@pytest.mark.parametrize(
    ("command", "mentions"),
    [([], "{collect,series,prune}"), (["collect"], "--json"), (["series"], "--prefix"), (["prune"], "--dry-run")],
)
def test_every_subcommand_has_help(command, mentions, capsys):
    with pytest.raises(SystemExit) as exit:
        call_command("metrics", *command, "--help")
    assert exit.value.code == 0
    assert mentions in capsys.readouterr().out


def test_as_a_real_process_bad_input_exits_2_without_a_traceback(tmp_path):
    env = subprocess_env(OPSPORTAL_VAR_DIR=str(tmp_path))

    for args in (["bogus"], ["prune", "--days", "3"], []):
        result = manage("metrics", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip()

    unmigrated = manage("metrics", "series", env=env)
    assert unmigrated.returncode == 1
    assert "the database failed" in unmigrated.stderr and "Traceback" not in unmigrated.stderr
