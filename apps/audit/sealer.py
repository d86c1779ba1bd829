"""One sealing thread per process, woken when a transaction that wrote audit events commits.

Writers never wait for the chain: their commit only wakes this thread, which
seals everything pending in one go (so under load one seal covers many
events). If the process dies first, the periodic sweep (audit_seal_task) seals
what it left. With AUDIT_SEAL_IN_BACKGROUND off, the committing thread seals
inline instead: slower, but finished when the commit returns.
"""

import os
import threading

import structlog
from django.conf import settings
from django.db import connection

from apps.audit import chain

logger = structlog.get_logger(__name__)

IDLE_SECONDS = 60.0  # an idle sealer gives its database connection back
RETRY_SECONDS = 1.0


class Sealer:
    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def wake(self) -> None:
        if not settings.AUDIT_SEAL_IN_BACKGROUND:
            chain.seal()
            return
        self._ensure_running()
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Seal what is pending, then end the thread (at shutdown, and in tests)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None or not thread.is_alive():
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)

    def _ensure_running(self) -> None:
        if self.is_alive():
            return
        with self._lock:  # first wake in this process (or the first after a fork)
            if not self.is_alive():
                self._stop.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="opsportal-audit-sealer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                if not self._wake.wait(IDLE_SECONDS):
                    connection.close()
                    continue
                self._wake.clear()
                try:
                    chain.seal()
                except Exception:
                    logger.exception("audit_seal_failed", retry_in_seconds=RETRY_SECONDS)
                    connection.close()  # a broken connection is replaced on the next try
                    if not self._stop.wait(RETRY_SECONDS):
                        self._wake.set()
                        continue
                if self._stop.is_set():
                    return
        finally:
            connection.close()


sealer = Sealer()
