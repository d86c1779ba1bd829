"""Live progress of a backup, verify, restore or drill: frames on topic "backups" for the admin.

A pipeline reports every 1 MiB chunk; the admin needs a few frames a second, so frames are
throttled to at most 4 a second plus one at every phase change (and the ended phase's last
count, when the throttle held it back). The same calls renew the run's lease, so a run that
makes progress keeps its lock and a stalled one loses it.
"""

from collections.abc import Callable
from time import monotonic

from apps.backups.lease import Lease
from apps.core.broadcast import broadcast_on_commit

TOPIC = "backups"
MIN_INTERVAL = 0.25  # seconds between two frames of one phase
RENEW_EVERY = 30.0  # seconds between two renewals of the lease

Listener = Callable[[str, int, int | None], None]


class Progress:
    """Callable as progress(phase, done, total=None): bytes done in the phase, and its total when known.

    Progress happens outside transactions, so broadcast_on_commit() sends at once. A listener
    (a command's progress bar) is called on every report, unthrottled.
    """

    def __init__(
        self,
        operation: str,
        *,
        policy: str,
        backup_id: int | None,
        lease: Lease | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.operation, self.policy, self.backup_id = operation, policy, backup_id
        self.lease, self.listener = lease, listener
        self.started = self.phase_started = self.sent_at = self.renewed_at = monotonic()
        self.phase = ""
        self.done = self.sent_done = 0
        self.total: int | None = None

    def __call__(self, phase: str, done: int, total: int | None = None) -> None:
        now = monotonic()
        if self.lease is not None and now - self.renewed_at >= RENEW_EVERY:
            self.lease.renew()  # raises when the lock was lost: the run must stop
            self.renewed_at = now
        if self.listener is not None:
            self.listener(phase, done, total)
        changed = phase != self.phase
        if changed:
            if self.phase and self.done != self.sent_done:  # the ended phase's last count, held by the throttle
                self._send(now)
            self.phase, self.phase_started = phase, now
        self.done, self.total = done, total
        if changed or now - self.sent_at >= MIN_INTERVAL:
            self._send(now)

    def _send(self, now: float) -> None:
        self.sent_at, self.sent_done = now, self.done
        broadcast_on_commit(TOPIC, "progress", self._data(now))

    def finish(self, status: str, error: str = "") -> None:
        """The last frame: how it ended."""
        broadcast_on_commit(TOPIC, "finished", {**self._data(monotonic()), "status": status, "error": error})

    def _data(self, now: float) -> dict:
        in_phase = now - self.phase_started
        return {
            "operation": self.operation,
            "policy": self.policy,
            "backup_id": self.backup_id,
            "phase": self.phase,
            "bytes": self.done,
            "total": self.total,
            "rate": round(self.done / in_phase) if in_phase > 0 else 0,
            "elapsed": round(now - self.started, 3),
        }
