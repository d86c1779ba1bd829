"""Live progress on the dashboard socket's "backups" topic: for people who may view backups, nobody else.

With channels-redis (REDIS_URL) the tests of other processes publish on the same
topic: a test tells its frames apart by a policy name of its own.
"""

import json
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.utils import timezone

from apps.backups import live
from apps.backups.models import Backup, BackupPolicy, Drill, Status, Verification
from apps.backups.progress import Progress
from tests.dashboard.conftest import fresh_hub, open_socket, session_cookie, subscribed  # noqa: F401 - fresh_hub: autouse

pytestmark = pytest.mark.django_db(transaction=True)


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


async def frames_of(socket: WebsocketCommunicator, policy: str, count: int, timeout: float = 5) -> list[dict]:
    """The next count frames of the backups topic about this policy."""
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < count:
        frame = await socket.receive_json_from(timeout=max(0.01, deadline - time.monotonic()))
        if frame.get("topic") == "backups" and frame["data"].get("policy") == policy:
            frames.append(frame)
    return frames


def report(policy: str) -> None:
    progress = Progress("backup", policy=policy, backup_id=None)
    progress("dump:default", 1 << 20, 4 << 20)
    progress.finish("succeeded")


async def test_a_user_who_may_view_backups_sees_progress_frames(staff_user):
    await sync_to_async(grant)(staff_user, "view_backup")
    socket = await open_socket(await sync_to_async(session_cookie)(staff_user))
    snapshots = await subscribed(socket, "backups")
    policy = f"live-{uuid.uuid4().hex[:8]}"

    await sync_to_async(report)(policy)

    progress, finished = await frames_of(socket, policy, 2)
    assert "running" in snapshots["backups"]["data"]
    assert (progress["type"], finished["type"]) == ("progress", "finished")
    assert progress["data"]["phase"] == "dump:default"
    assert (progress["data"]["bytes"], progress["data"]["total"]) == (1 << 20, 4 << 20)
    assert {"operation", "rate", "elapsed", "backup_id"} <= set(progress["data"])
    assert finished["data"]["status"] == "succeeded"
    await socket.disconnect()


async def test_staff_without_view_backup_are_denied_the_topic_and_get_no_frame(staff_user):
    await sync_to_async(grant)(staff_user, "view_backuppolicy")  # policies, not backups
    socket = await open_socket(await sync_to_async(session_cookie)(staff_user))
    await socket.send_json_to({"type": "subscribe", "topics": ["backups"]})
    assert await socket.receive_json_from() == {"type": "subscribed", "topics": [], "denied": ["backups"]}

    await sync_to_async(report)(f"live-{uuid.uuid4().hex[:8]}")

    assert await socket.receive_nothing(0.5)
    await socket.disconnect()


def test_the_snapshot_lists_the_backups_running_under_a_live_lease():
    now = timezone.now()
    alive = BackupPolicy.objects.create(name="alive", lock_token="x", lock_expires_at=now + timedelta(minutes=5))
    dead = BackupPolicy.objects.create(name="dead", lock_token="y", lock_expires_at=now - timedelta(minutes=1))
    running = Backup.objects.create(policy=alive, storage="local", location="alive/1", started_at=now)
    Backup.objects.create(policy=dead, storage="local", location="dead/1", started_at=now)  # killed: lease expired
    Backup.objects.create(policy=alive, storage="local", location="alive/0", started_at=now, status=Status.SUCCEEDED)

    [frame] = live.running()["running"]

    assert (frame["operation"], frame["policy"], frame["backup_id"]) == ("backup", "alive", running.pk)
    assert frame["bytes"] == 0 and frame["elapsed"] >= 0


def test_the_snapshot_says_how_what_finished_in_the_last_minute_ended():
    now = timezone.now()
    policy = BackupPolicy.objects.create(name="nightly")
    ended = {"status": Status.SUCCEEDED, "verification": Verification.OK, "storage": "local"}
    Backup.objects.create(policy=policy, location="nightly/0", started_at=now - timedelta(hours=1),
                          finished_at=now - timedelta(minutes=59), **ended)  # fmt: skip
    backup = Backup.objects.create(policy=policy, location="nightly/1", started_at=now - timedelta(seconds=5),
                                   finished_at=now - timedelta(seconds=2), size_bytes=1234, **ended)  # fmt: skip
    checks = [{"name": "row counts", "ok": True}, {"name": "files", "ok": False, "detail": "1 missing"}]
    Drill.objects.create(backup=backup, policy=policy, status=Status.FAILED, started_at=now - timedelta(seconds=1),
                         finished_at=now, checks=checks, error="files: 1 missing")  # fmt: skip

    snapshot = json.loads(json.dumps(live.running()))  # what the socket sends

    backup_frame, drill_frame = snapshot["finished"]
    assert snapshot["running"] == []
    assert (backup_frame["operation"], backup_frame["backup_id"], backup_frame["status"]) == (
        "backup", backup.pk, "succeeded")  # fmt: skip
    assert (backup_frame["verification"], backup_frame["bytes"], backup_frame["elapsed"]) == ("ok", 1234, 3.0)
    assert (drill_frame["operation"], drill_frame["backup_id"], drill_frame["status"]) == ("drill", backup.pk, "failed")
    assert (drill_frame["checks_passed"], drill_frame["checks_total"]) == (1, 2)
    assert drill_frame["error"] == "files: 1 missing"


def test_a_backup_its_run_is_verifying_is_still_running():
    now = timezone.now()
    policy = BackupPolicy.objects.create(name="nightly", lock_token="x", lock_expires_at=now + timedelta(minutes=5))
    written = Backup.objects.create(policy=policy, storage="local", location="nightly/1", status=Status.SUCCEEDED,
                                    started_at=now - timedelta(seconds=3), finished_at=now)  # fmt: skip

    snapshot = live.running()

    assert [(frame["backup_id"], frame["phase"]) for frame in snapshot["running"]] == [(written.pk, "verify")]
    assert snapshot["finished"] == []
    BackupPolicy.objects.filter(pk=policy.pk).update(lock_token="", lock_expires_at=None)  # its run ended
    assert [frame["verification"] for frame in live.running()["finished"]] == ["unverified"]
