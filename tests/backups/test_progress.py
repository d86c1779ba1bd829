"""Progress frames: throttled, one at each phase change, a last one saying how it ended; the lease renewed."""

import json

import pytest

from apps.backups import progress as progress_module
from apps.backups.errors import BackupError
from apps.backups.progress import MIN_INTERVAL, RENEW_EVERY, Progress
from tests.broadcasts import listen

# Progress is reported outside transactions (frames leave at once), as in a real run.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic clock Progress reads (its own name only: the publisher thread keeps the real one), moved by
    hand: clock[0] += seconds."""
    now = [1000.0]
    monkeypatch.setattr(progress_module, "monotonic", lambda: now[0])
    return now


def test_progress_is_throttled_but_every_phase_change_is_sent(clock):
    progress = Progress("backup", policy="throttled", backup_id=7)

    def run() -> None:
        for done in range(0, 500 << 20, 1 << 20):  # 500 chunks within one throttle interval
            progress("dump:default", done)
            clock[0] += MIN_INTERVAL / 1000
        clock[0] += MIN_INTERVAL  # a quarter second later: one more frame of the same phase
        progress("dump:default", 500 << 20)
        progress("files", 0, 1000)
        progress.finish("succeeded")

    # Only this test's frames: on Redis the other test processes' backups broadcast on the topic too.
    payloads, _ = listen("backups", run, count=4, where=lambda data: data["policy"] == "throttled")
    assert [(p["type"], p["data"]["phase"], p["data"]["bytes"]) for p in payloads] == [
        ("progress", "dump:default", 0),
        ("progress", "dump:default", 500 << 20),
        ("progress", "files", 0),
        ("finished", "files", 0),
    ]
    assert payloads[1]["data"]["rate"] == round((500 << 20) / (MIN_INTERVAL * 1.5))
    first, last = (json.loads(json.dumps(p["data"])) for p in (payloads[0], payloads[-1]))  # what the socket sends
    assert first == {
        "operation": "backup",
        "policy": "throttled",
        "backup_id": 7,
        "phase": "dump:default",
        "bytes": 0,
        "total": None,
        "rate": 0,
        "elapsed": first["elapsed"],
    }
    assert (last["status"], last["error"], last["total"]) == ("succeeded", "", 1000)


def test_a_phase_ends_with_its_last_count_even_when_the_throttle_held_it(clock):
    progress = Progress("backup", policy="last-count", backup_id=8)

    def run() -> None:
        progress("dump:default", 0)
        progress("dump:default", 7 << 20)  # within the interval: held back
        progress("files", 0)

    payloads, _ = listen("backups", run, count=3, where=lambda data: data["policy"] == "last-count")
    assert [(p["data"]["phase"], p["data"]["bytes"]) for p in payloads] == [
        ("dump:default", 0),
        ("dump:default", 7 << 20),
        ("files", 0),
    ]


def test_a_listener_sees_every_report():
    seen = []
    progress = Progress("restore", policy="p", backup_id=None, listener=lambda *args: seen.append(args))
    for done in (1, 2, 3):
        progress("restore:default", done, 3)
    assert seen == [("restore:default", 1, 3), ("restore:default", 2, 3), ("restore:default", 3, 3)]


class FakeLease:
    def __init__(self, lost: bool = False) -> None:
        self.renewals, self.lost = 0, lost

    def renew(self) -> None:
        if self.lost:
            raise BackupError("lost the lock")
        self.renewals += 1


def test_progress_renews_the_lease_every_thirty_seconds_and_stops_a_run_that_lost_it():
    lease = FakeLease()
    progress = Progress("backup", policy="p", backup_id=1, lease=lease)
    progress("files", 1)
    assert lease.renewals == 0
    progress.renewed_at -= RENEW_EVERY
    progress("files", 2)
    progress("files", 3)
    assert lease.renewals == 1
    lease.lost = True
    progress.renewed_at -= RENEW_EVERY
    with pytest.raises(BackupError, match="lost the lock"):
        progress("files", 4)
