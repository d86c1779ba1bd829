"""A backup to restore or drill: the test database and a small media folder, on local storage under tmp_path."""

import contextlib
from pathlib import Path

import pytest
from django.db import connection

from apps.backups import services
from apps.backups.engines import ENGINES
from apps.backups.models import Backup, BackupPolicy, Status, Verification


def back_up(tmp_path: Path, settings, *, recipients: str = "") -> Backup:
    settings.BACKUP_SCRATCH_DIR = tmp_path / "scratch"
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": tmp_path / "backups"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    (settings.MEDIA_ROOT / "avatars").mkdir(parents=True, exist_ok=True)
    (settings.MEDIA_ROOT / "avatars" / "alice.png").write_bytes(b"\x89PNG alice")
    (settings.MEDIA_ROOT / "report.pdf").write_bytes(b"%PDF report")
    policy, _ = BackupPolicy.objects.update_or_create(
        name="nightly",
        defaults={"keep_last": 10, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, "recipients": recipients},
    )
    backup = services.backup_run(policy)
    assert (backup.status, backup.verification) == (Status.SUCCEEDED, Verification.OK), backup.error
    return backup


def flip_a_byte(tmp_path: Path, backup: Backup, name: str) -> None:
    """Damage a stored artifact as a failing disk would."""
    path = tmp_path / "backups" / backup.location / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def record_scratch_targets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scratch targets the engines hand out from now on (the real ones: only recorded)."""
    targets: list[str] = []
    for engine_class in ENGINES.values():

        @contextlib.contextmanager
        def recorded(self, alias: str, scratch=engine_class.scratch):
            with scratch(self, alias) as target:
                targets.append(target)
                yield target

        monkeypatch.setattr(engine_class, "scratch", recorded)
    return targets


def scratch_exists(target: str) -> bool:
    if target.startswith("postgres://"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target.split("?")[0].rsplit("/", 1)[1]])
            return cursor.fetchone() is not None
    return Path(target).exists()
