"""`manage.py health`: a table or JSON, and an exit status for cron, CI and exec probes."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.health.checks import Status
from tests.services import manage, subprocess_env

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("health", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        return exit.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_healthy_checks_print_a_table_and_exit_0(scripted):
    scripted.add("database", message="SELECT 1 in 2 ms")
    scripted.add("disk", Status.WARNING, "85 % used")

    code, out, _ = run()

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "LATENCY", "MESSAGE"]
    assert lines[1].split()[:2] == ["database", "ok"] and lines[1].endswith("SELECT 1 in 2 ms")
    assert lines[2].split()[:2] == ["disk", "warning"]
    assert lines[-1] == "Overall: warning"


def test_a_critical_check_exits_1(scripted):
    scripted.add("database")
    scripted.add("redis", Status.CRITICAL, "connection refused")

    assert run()[0] == 1
    assert run("--check", "database")[0] == 0


def test_fail_on_warning_exits_1_on_a_warning(scripted):
    scripted.add("disk", Status.WARNING, "85 % used")
    scripted.add("scheduler", Status.UNKNOWN, "no heartbeat")

    assert run("--fail-on", "warning")[0] == 1
    assert run("--fail-on", "warning", "--check", "scheduler")[0] == 0
    assert run("--fail-on", "critical")[0] == 0


def test_json_output_has_every_result_and_the_overall_status(scripted):
    scripted.add("database", message="SELECT 1 in 2 ms")
    scripted.add("redis", Status.CRITICAL, "connection refused")

    code, out, _ = run("--json")

    data = json.loads(out)
    assert code == 1 and data["status"] == "critical"
    assert [(c["name"], c["status"], c["message"]) for c in data["checks"]] == [
        ("database", "ok", "SELECT 1 in 2 ms"),
        ("redis", "critical", "connection refused"),
    ]
    assert set(data["checks"][0]) == {"name", "status", "message", "latency_ms", "details", "checked_at"}


def test_check_runs_only_the_named_checks(scripted):
    for name in ("cache", "database", "disk"):
        scripted.add(name)

    data = json.loads(run("--json", "--check", "disk", "--check", "cache")[1])

    assert [c["name"] for c in data["checks"]] == ["disk", "cache"]
    assert scripted.calls == {"disk": 1, "cache": 1}


def test_an_unknown_check_name_is_a_usage_error(scripted):
    scripted.add("database")

    with pytest.raises(CommandError) as error:
        call_command("health", "--check", "databse")

    assert error.value.returncode == 2
    assert str(error.value) == "no check named 'databse' (checks: database)"


def test_timeout_bounds_a_hanging_check(only_checks, hang):
    stuck = hang("stuck", timeout=30)
    only_checks.register("stuck", timeout=30)(stuck.func)

    code, out, _ = run("--json", "--timeout", "0.3")

    (result,) = json.loads(out)["checks"]
    assert code == 1 and result["message"] == "timed out after 0.3 s"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "1e9"])
def test_a_bad_timeout_is_a_usage_error(value):
    with pytest.raises(CommandError, match="timeout"):
        call_command("health", "--timeout", value)


def test_list_names_the_checks(scripted):
    scripted.add("database")
    scripted.add("disk")

    assert run("--list")[1].split() == ["database", "disk"]


def test_as_a_real_process_the_exit_status_and_errors_are_for_scripts(var_dir):
    env = subprocess_env(OPSPORTAL_VAR_DIR=var_dir)  # a fresh database, not even migrated

    unknown = manage("health", "--check", "nope", env=env)
    assert unknown.returncode == 2
    assert "no check named 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr

    everything = manage("health", "--json", "--timeout", "3", env=env)
    assert everything.returncode == 1, everything.stderr  # no Celery worker answers
    states = {check["name"]: (check["status"], check["message"]) for check in json.loads(everything.stdout)["checks"]}
    assert states["database"][0] == states["disk"][0] == "ok"
    assert states["celery_workers"][0] == "critical"
    assert states["migrations"][0] == "warning"
    assert states["targets"][0] == "critical" and "cannot read the targets" in states["targets"][1]
