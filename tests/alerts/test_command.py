"""`manage.py alerts` through call_command (and once as a real process): output, state changes, exit status."""

import getpass
import io
import json
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.alerts import matchers, silences
from apps.alerts.models import Alert, EscalationPolicy, EscalationStep, Notification, Route, Silence, State
from apps.audit.models import AuditEvent
from apps.core import context
from tests.services import manage, subprocess_env

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("alerts", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def data(*args: str) -> dict | list:
    return json.loads(run(*args, "--json"))


def fire(key: str = "disk-full", *extra: str) -> dict:
    return data(
        "fire", "--source", "cron", "--key", key, "--severity", "critical", "--summary", f"{key} on db-1", *extra
    )


def test_fire_list_ack_resolve_round_trip():
    fired = fire("disk-full", "--label", "env=prod", "--label", "team=dba", "--value", "97.5")
    again = fire("disk-full")
    fire("backup-late")

    assert (again["id"], again["fire_count"], again["state"]) == (fired["id"], 2, "firing")
    assert fired["labels"] == {"env": "prod", "team": "dba"} and fired["value"] == 97.5
    assert [a["key"] for a in data("list", "--state", "firing")] == ["backup-late", "disk-full"]

    assert data("ack", str(fired["id"]), "--comment", "replacing the disk")["state"] == State.ACKNOWLEDGED
    assert [a["key"] for a in data("list", "--state", "acknowledged")] == ["disk-full"]
    assert data("unack", str(fired["id"]))["state"] == State.FIRING
    assert data("resolve", str(fired["id"]), "--comment", "disk replaced")["state"] == State.RESOLVED
    assert data("resolve", "--source", "cron", "--key", "backup-late")["state"] == State.RESOLVED
    assert data("list", "--state", "firing") == []

    alert = Alert.objects.get(pk=fired["id"])
    steps = list(alert.transitions.values_list("kind", "actor_name", "comment"))
    assert steps[-3:] == [
        ("acknowledged", "cli", "replacing the disk"),
        ("unacknowledged", "cli", ""),
        ("resolved", "cli", "disk replaced"),
    ]
    # A person's acts are audited; a producer's resolve (by source and key) names nobody, as a health check's would.
    audited = AuditEvent.objects.filter(action__startswith="alert.").order_by("id")
    assert [(e.action, e.resource_id) for e in audited] == [
        ("alert.ack", str(alert.pk)),
        ("alert.unack", str(alert.pk)),
        ("alert.resolve", str(alert.pk)),
    ]


def test_a_persons_acts_are_recorded_as_the_os_user_who_cannot_sign_in_with_it():
    alert = fire()
    with context.bound(context.for_command()) as caller:  # as manage.py binds it
        run("ack", str(alert["id"]))

    account = get_user_model().objects.get(username=caller.username)
    assert caller.username == f"cli:{getpass.getuser()}"
    assert not account.is_active and not account.has_usable_password() and not account.is_staff
    assert Alert.objects.get(pk=alert["id"]).acknowledged_by == account
    assert AuditEvent.objects.get(action="alert.ack").actor_username == caller.username
    assert Alert.objects.get(pk=alert["id"]).transitions.last().actor_name == caller.username


def test_list_prints_a_table_and_filters_by_source():
    fire("disk-full")
    data("fire", "--source", "backup", "--key", "nightly", "--severity", "error", "--summary", "backup failed")

    table = run("list", "--source", "backup").splitlines()

    assert table[0].split()[:4] == ["ID", "STATE", "SEVERITY", "SOURCE/KEY"]
    assert len(table) == 2 and "backup/nightly" in table[1] and "backup failed" in table[1]
    assert run("list", "--state", "resolved").strip() == "No alerts."


def test_ack_and_unack_are_idempotent_but_refuse_a_resolved_alert():
    alert = fire()
    run("ack", str(alert["id"]))

    assert "already acknowledged" in run("ack", str(alert["id"]))
    run("resolve", str(alert["id"]))
    with pytest.raises(CommandError, match="is resolved: nothing to acknowledge") as refused:
        run("ack", str(alert["id"]))
    assert refused.value.returncode == 1
    assert "already resolved" in run("resolve", str(alert["id"]))


def test_silence_creates_a_silence_that_covers_matching_alerts():
    made = data("silence", "--match", "source=cron", "--match", "key=~disk-.*", "--for", "2h", "--comment", "swap")

    silence = Silence.objects.get(pk=made["id"])
    assert silence.matchers == ["source=cron", "key=~disk-.*"] and silence.comment == "swap"
    assert silence.ends_at - silence.starts_at == timedelta(hours=2) and silence.created_by.username == "cli"
    now = timezone.now()
    assert silences.covering(matchers.alert_fields("cron", "disk-sda", "critical", {}), now)[0] == silence
    assert silences.covering(matchers.alert_fields("cron", "backup", "critical", {}), now) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fire", "--source", "s", "--key", "k", "--severity", "apocalyptic", "--summary", "x"], "invalid choice"),
        (
            ["fire", "--source", "s", "--key", "k", "--severity", "info", "--summary", "x", "--label", "9x=1"],
            "not a label name",
        ),
        (
            ["fire", "--source", "s", "--key", "k", "--severity", "info", "--summary", "x", "--label", "novalue"],
            "not a label",
        ),
        (["silence", "--match", "key=~disk-(", "--for", "2h", "--comment", "x"], "not a valid regular expression"),
        (["silence", "--match", "key=disk", "--for", "2 weeks", "--comment", "x"], "not a duration"),
        (["silence", "--match", "key=disk", "--for", "0m", "--comment", "x"], "not a duration"),
        (["silence", "--for", "2h", "--comment", "x"], "--match"),
        (["ack", "forty-two"], "invalid int value"),
        (["explode"], "invalid choice"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("alerts", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not Alert.objects.exists() and not Silence.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["resolve"],
        ["resolve", "1", "--source", "s", "--key", "k"],
        ["resolve", "--source", "s"],
        ["fire", "--source", " ", "--key", "k", "--severity", "info", "--summary", "x"],
    ],
)
def test_inconsistent_arguments_exit_2(args):
    with pytest.raises(CommandError) as refused:
        run(*args)
    assert refused.value.returncode == 2


@pytest.mark.parametrize(
    "args",
    [
        ["ack", "999"],
        ["unack", "999"],
        ["resolve", "999"],
        ["resolve", "--source", "s", "--key", "nothing"],
        ["test-channel", "nowhere"],
    ],
)
def test_what_is_not_there_exits_1(args):
    with pytest.raises(CommandError, match="no ") as missing:
        run(*args)
    assert missing.value.returncode == 1


def test_a_usage_error_from_the_shell_is_one_line_and_exit_2(var_dir):
    result = manage(
        "alerts",
        "fire",
        "--source",
        "s",
        "--key",
        "k",
        "--severity",
        "bogus",
        "--summary",
        "x",
        env=subprocess_env(OPSPORTAL_VAR_DIR=var_dir),
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("manage.py alerts fire: error: argument --severity: invalid")


def test_test_channel_exits_0_when_delivered_and_1_when_not(http_receiver, make_channel):
    make_channel("ops-hook", url=http_receiver.url())
    assert json.loads(run("test-channel", "ops-hook", "--json"))["delivered"] is True
    http_receiver.answer(410)

    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("alerts", "test-channel", "ops-hook", stdout=io.StringIO(), stderr=err)

    assert exited.value.code == 1 and "failed: HTTP 410" in err.getvalue()
    assert [r.headers["webhook-id"][:5] for r in http_receiver.wait_for(2)] == ["test:", "test:"]


def test_deliver_runs_the_due_work_and_the_sweep(make_channel, http_receiver, tasks_run_inline):
    hook = make_channel("ops-hook", url=http_receiver.url())
    policy = EscalationPolicy.objects.create(name="on-call")
    EscalationStep.objects.create(policy=policy).channels.set([hook])
    Route.objects.create(name="all", is_default=True, policy=policy, group_wait_seconds=30)
    fire("disk-full")
    assert data("deliver") == {"groups": 0, "escalations": 0, "reminders": 0, "dispatched": 0}

    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        done = data("deliver")

    assert done == {"groups": 1, "escalations": 0, "reminders": 0, "dispatched": 1}
    (request,) = http_receiver.wait_for(1)
    assert request.json()["type"] == "alert.firing"
    assert Notification.objects.get().status == Notification.Status.DELIVERED
    assert "0 groups notified" in run("deliver")
