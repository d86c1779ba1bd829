"""Subscribe, snapshot, live frames in seq order, resync, unsubscribe, permissions: the protocol.

With channels-redis (REDIS_URL) the tests of other processes publish on the same
topics: frames are told apart by a tag of the test's own in their data.
"""

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission

from apps.alerts.services import alert_fire
from apps.audit.services import record
from apps.core import broadcast
from apps.metrics.reporting import Reporter
from tests.dashboard.conftest import frames_within, next_frame, open_socket, publish, session_cookie, subscribed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def admin_socket(superuser):
    socket = await open_socket(await sync_to_async(session_cookie)(superuser))
    yield socket
    await socket.disconnect()


def grant(user, *codenames: str) -> None:
    group = Group.objects.create(name=f"viewers-{user.pk}")
    group.permissions.set(Permission.objects.filter(codename__in=codenames))
    user.groups.add(group)


async def test_a_subscriber_gets_a_snapshot_then_frames_numbered_after_it(admin_socket):
    tag = uuid.uuid4().hex
    snapshots = await subscribed(admin_socket, "metrics", "health")

    assert set(snapshots) == {"metrics", "health"}
    assert snapshots["metrics"]["data"] == {"at": None, "values": {}}
    assert snapshots["health"]["data"] == {"overall": "unknown", "checks": []}
    for n in range(3):
        await publish("metrics", "sample", {"at": n, "values": {"system.cpu.percent": n}, "tag": tag})
    frames = [await next_frame(admin_socket, tag=tag) for _ in range(3)]
    assert [(f["topic"], f["type"], f["data"]["at"]) for f in frames] == [("metrics", "sample", n) for n in range(3)]
    seqs = [snapshots["metrics"]["seq"], *(f["seq"] for f in frames)]
    assert seqs == sorted(set(seqs)), "numbered after the snapshot, one by one (others' frames between, with Redis)"
    assert all(isinstance(f["ts"], float) for f in frames)


async def test_topics_are_filtered_by_permission(staff_user):
    tag = uuid.uuid4().hex
    await sync_to_async(grant)(staff_user, "view_series")
    socket = await open_socket(await sync_to_async(session_cookie)(staff_user))

    await socket.send_json_to({"type": "subscribe", "topics": ["metrics", "audit", "alerts", "health"]})

    assert await socket.receive_json_from() == {
        "type": "subscribed",
        "topics": ["metrics"],
        "denied": ["alerts", "audit", "health"],
    }
    assert (await socket.receive_json_from())["type"] == "snapshot"
    await publish("audit", "event", {"id": 1, "tag": tag})
    await publish("metrics", "sample", {"at": 1, "values": {}, "tag": tag})
    await next_frame(socket, topic="metrics", tag=tag)
    assert {f.get("topic") for f in await frames_within(socket, 0.3)} <= {"metrics", None}
    await socket.disconnect()


async def test_after_unsubscribe_no_frame_of_the_topic_arrives(admin_socket):
    tag = uuid.uuid4().hex
    await subscribed(admin_socket, "metrics", "alerts")

    await admin_socket.send_json_to({"type": "unsubscribe", "topics": ["metrics"]})
    answer = await next_frame(admin_socket, type="subscribed")
    assert answer == {"type": "subscribed", "topics": ["alerts"], "denied": []}
    await publish("metrics", "sample", {"at": 1, "values": {}, "tag": tag})
    await publish("alerts", "alert", {"id": 1, "tag": tag})

    await next_frame(admin_socket, topic="alerts", tag=tag)
    assert {f.get("topic") for f in await frames_within(admin_socket, 0.3)} <= {"alerts", None}


async def test_a_gap_is_delivered_as_a_gap_and_a_resync_sends_a_snapshot_numbered_at_it(admin_socket):
    tag = uuid.uuid4().hex
    base = (await subscribed(admin_socket, "metrics"))["metrics"]["seq"]
    broadcast._publisher._lose("metrics", 1)  # a frame that never arrived

    await publish("metrics", "sample", {"at": 2, "values": {}, "tag": tag})
    frame = await next_frame(admin_socket, tag=tag)
    assert frame["seq"] >= base + 2, "delivered after the re-order wait, with the gap"

    await admin_socket.send_json_to({"type": "resync", "topic": "metrics"})
    before = [frame, *await frames_until_snapshot(admin_socket)]
    snapshot = before.pop()
    assert snapshot["seq"] == max(f["seq"] for f in before if f.get("topic") == "metrics")
    await publish("metrics", "sample", {"at": 3, "values": {}, "tag": tag})
    assert (await next_frame(admin_socket, tag=tag))["seq"] > snapshot["seq"]


async def frames_until_snapshot(socket) -> list[dict]:
    frames = [await socket.receive_json_from()]
    while frames[-1]["type"] != "snapshot":
        frames.append(await socket.receive_json_from())
    return frames


async def test_snapshots_hold_the_open_alerts_and_the_audit_tail(admin_socket):
    await sync_to_async(alert_fire)(source="health", key="db", severity="critical", summary="db down")
    await sync_to_async(record)("test.thing", resource=("test", "7", "thing seven"))

    snapshots = await subscribed(admin_socket, "alerts", "audit")

    (alert,) = snapshots["alerts"]["data"]["alerts"]
    assert (alert["key"], alert["state"]) == ("db", "firing")
    newest = snapshots["audit"]["data"]["events"][0]
    assert (newest["action"], newest["object"]) == ("test.thing", "thing seven")
    assert set(newest) == {"id", "at", "actor", "action", "object", "ip", "request_id"}


async def test_audit_events_and_alert_changes_are_pushed_live(admin_socket):
    await subscribed(admin_socket, "alerts", "audit")

    await sync_to_async(record)("test.pushed", resource=("test", "8", "thing eight"))
    event = await next_frame(admin_socket, topic="audit")
    assert (event["type"], event["data"]["action"]) == ("event", "test.pushed")
    assert json.loads(json.dumps(event["data"]))["object"] == "thing eight"

    await sync_to_async(alert_fire)(source="health", key="disk", severity="warning", summary="disk full")
    alert = await next_frame(admin_socket, topic="alerts")
    assert (alert["type"], alert["data"]["key"], alert["data"]["state"]) == ("alert", "disk", "firing")


async def test_heartbeats_arrive_on_a_quiet_socket(admin_socket, settings):
    settings.DASHBOARD_HEARTBEAT_SECONDS = 1

    frame = await next_frame(admin_socket, timeout=3, type="heartbeat")

    assert isinstance(frame["ts"], float)


async def test_the_hub_reports_its_clients_and_frames_to_the_metrics(admin_socket):
    await subscribed(admin_socket, "metrics")
    await publish("metrics", "sample", {"at": 1, "values": {}})
    await next_frame(admin_socket, topic="metrics")

    payload = Reporter(role="web").payload()

    assert payload["gauges"]["dashboard.clients"] >= 1
    assert payload["counters"]["dashboard.frames.sent"] >= 3  # subscribed, snapshot, sample
    assert "dashboard.frames.dropped" in payload["counters"]
