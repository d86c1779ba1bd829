"""The runner: checks run side by side, each within its timeout; a hanging one never holds up the others."""

import threading
import time

import pytest

from apps.health import runner, services
from apps.health.checks import Check, Outcome, Status, UnknownCheckError, ok


def quick(name: str, delay: float = 0.0) -> Check:
    def check() -> Outcome:
        time.sleep(delay)
        return ok(f"{name} answered")

    return Check(name, check, timeout=2)


def test_a_hanging_check_times_out_and_the_others_finish_in_time(hang):
    checks = [quick("a", 0.05), hang("stuck", timeout=1.0), quick("b", 0.1), quick("c")]

    started = time.monotonic()
    results = runner.run(checks)
    took = time.monotonic() - started

    assert took <= 1.0 * 1.1, f"a run with one hanging check took {took:.2f} s"
    assert [(r.name, r.status) for r in results] == [
        ("a", Status.OK),
        ("stuck", Status.CRITICAL),
        ("b", Status.OK),
        ("c", Status.OK),
    ]
    stuck = results[1]
    assert stuck.message == "timed out after 1 s"
    assert stuck.latency_ms >= 1000 and stuck.details["timeout_seconds"] == 1.0
    assert results[0].latency_ms >= 50 and results[0].message == "a answered"


def test_checks_run_concurrently_not_one_after_another():
    checks = [quick(f"slow-{n}", 0.3) for n in range(6)]

    started = time.monotonic()
    results = runner.run(checks)

    assert time.monotonic() - started < 1.0  # 1.8 s one after another
    assert {r.status for r in results} == {Status.OK}


def test_the_callers_timeout_replaces_every_checks_own(hang):
    started = time.monotonic()
    (result,) = runner.run([hang("stuck", timeout=30)], timeout=0.3)

    assert time.monotonic() - started < 0.6
    assert (result.status, result.message) == (Status.CRITICAL, "timed out after 0.3 s")


def test_a_check_still_hanging_from_the_last_run_is_joined_not_started_again(hang):
    stuck = hang("stuck-twice", timeout=0.2)

    first = runner.run([stuck])
    started = time.monotonic()
    runner.run([stuck])
    (again,) = runner.run([stuck])

    threads = [thread for thread in threading.enumerate() if thread.name == "health-check:stuck-twice"]
    assert len(threads) == 1  # one thread for the check, whatever the number of runs
    assert time.monotonic() - started < 0.1  # it has been running past its timeout already: no new wait
    assert again.status == Status.CRITICAL and again.checked_at == first[0].checked_at
    assert "stuck-twice" in runner.in_flight()


def test_a_check_that_raises_is_critical_with_the_reason_and_no_secret():
    def broken() -> Outcome:
        raise ConnectionError("cannot reach https://ops:hunter2@db.example.org password=hunter2")

    (result,) = runner.run([Check("broken", broken)])

    assert result.status == Status.CRITICAL
    assert result.message.startswith("check failed: cannot reach https://ops:***@db.example.org")
    assert "hunter2" not in result.message


def test_a_check_that_returns_something_else_is_unknown():
    (result,) = runner.run([Check("odd", lambda: "fine")])

    assert result.status == Status.UNKNOWN and "returned str" in result.message


def test_messages_are_one_line():
    (result,) = runner.run([Check("multi", lambda: ok("first\nsecond\t third"))])

    assert result.message == "first second third"


def test_an_unknown_check_name_is_refused_with_the_known_names(scripted):
    scripted.add("alpha")
    scripted.add("beta")

    with pytest.raises(UnknownCheckError) as error:
        services.run_checks(["alpha", "gamma"])

    assert str(error.value) == "no check named 'gamma' (checks: alpha, beta)"


def test_run_checks_runs_the_named_checks_in_the_order_given(scripted):
    for name in ("alpha", "beta", "gamma"):
        scripted.add(name)

    assert [r.name for r in services.run_checks(["gamma", "alpha"])] == ["gamma", "alpha"]
    assert [r.name for r in services.run_checks()] == ["alpha", "beta", "gamma"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], Status.UNKNOWN),
        (["ok", "ok"], Status.OK),
        (["ok", "unknown"], Status.UNKNOWN),
        (["unknown", "warning", "ok"], Status.WARNING),
        (["critical", "warning"], Status.CRITICAL),
    ],
)
def test_overall_is_the_worst_status(statuses, expected):
    assert services.overall(statuses) == expected


def test_a_check_name_or_timeout_that_cannot_work_is_refused_at_registration(only_checks):
    with pytest.raises(ValueError, match="not a check name"):
        only_checks.register(" padded ")(lambda: ok("x"))
    with pytest.raises(ValueError, match="positive number"):
        only_checks.register("never", timeout=0)(lambda: ok("x"))
