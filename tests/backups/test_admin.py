"""The backups admin through the test client: policy validation, actions, records, downloads, permissions."""

from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pyrage
import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.checks import Warning as CheckWarning
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.backups.checks import backups_encrypted
from apps.backups.models import Backup, BackupPolicy, Drill, Status, Trigger, Verification
from apps.backups.storage import get_storage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
POLICIES = "/admin/backups/backuppolicy/"
BACKUPS = "/admin/backups/backup/"
DRILLS = "/admin/backups/drill/"
ARTIFACT = b"stored bytes of an artifact \x00\x01" * 1000


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path) -> Path:
    """Backups go to a folder of the test's own (a real local storage)."""
    root = tmp_path / "backups"
    settings.BACKUP_DIR = root
    settings.BACKUP_STORAGES = {"local": {"kind": "local", "path": root}}
    return root


@pytest.fixture
def tasks_run_inline() -> Iterator[None]:
    """Queued tasks run in the queuing thread (Celery's eager mode): the action's effect is there at once."""
    from opsportal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="backups", codename__in=codenames))


def policy_data(**overrides: object) -> dict:
    data = {
        "name": "nightly", "enabled": "on", "databases": ["default"], "include_media": "on", "paths": "",
        "schedule": "0 3 * * *", "compression_level": 3, "recipients": "", "storage": "local", "keep_last": 0,
        "keep_hourly": 0, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6, "keep_yearly": 0,
        "verify_after": "on", "verify_schedule": "30 4 * * 0", "verify_sample_percent": 10,
        "drill_schedule": "0 5 * * 0", "max_age": "",
    }  # fmt: skip
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def stored_backup(policy: BackupPolicy, name: str = "files.tar.zst", **fields: object) -> Backup:
    """A succeeded backup whose one artifact is really in the local storage."""
    location = f"{policy.name}/20261201T030000000000Z-{Backup.objects.count():08x}"
    with get_storage("local").writer(f"{location}/{name}") as out:
        out.write(ARTIFACT)
    manifest = {"format": 1, "artifacts": [{"name": name, "kind": "files", "engine": "files", "size": len(ARTIFACT),
                                            "sha256": "0" * 64, "raw_size": 99, "files": {"count": 2}}],
                "tools": {"python": "3.11"}, "migrations": [["backups", "0001_initial"]],
                "compression": {"algorithm": "zstd", "level": 3}, "recipients": []}  # fmt: skip
    values = {"status": Status.SUCCEEDED, "storage": "local", "location": location, "started_at": timezone.now(),
              "size_bytes": len(ARTIFACT), "manifest": manifest, "verification": Verification.OK}  # fmt: skip
    return Backup.objects.create(policy=policy, **{**values, **fields})


# ---------------------------------------------------------------- policy validation


def test_a_valid_policy_is_saved_and_audited(superuser_client):
    recipient = str(pyrage.x25519.Identity.generate().to_public())

    response = superuser_client.post(f"{POLICIES}add/", policy_data(recipients=f"  {recipient}  \n\n", paths="/srv/x"))

    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors
    policy = BackupPolicy.objects.get(name="nightly")
    assert policy.recipients == recipient and policy.encrypted and policy.paths == ["/srv/x"]
    assert AuditEvent.objects.filter(resource_type="backups.backuppolicy", resource_id=str(policy.pk)).exists()


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("schedule", "every night", "not a cron expression"),
        ("schedule", "61 3 * * *", "not a valid cron expression"),
        ("drill_schedule", "0 5 * *", "not a cron expression"),
        ("recipients", "age1notakey", "Not age recipients: line 1"),
        ("recipients", "AGE-SECRET-KEY-1QQQQ", "looks like a private key"),
        ("storage", "s3", "s3 is not a configured storage"),
        ("databases", ["default", "reports"], "reports is not a database alias"),
        ("paths", "relative/dir", "relative/dir is not an absolute path"),
        ("compression_level", 22, "less than or equal to 19"),
        ("verify_sample_percent", 0, "greater than or equal to 1"),
    ],
)
def test_the_policy_form_refuses_bad_input_with_a_clear_error(superuser_client, field, value, error):
    response = superuser_client.post(f"{POLICIES}add/", policy_data(**{field: value}))

    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert error in " ".join(errors.get(field, [])), errors
    assert not BackupPolicy.objects.filter(name="nightly").exists()


def test_the_add_form_starts_from_the_models_defaults(superuser_client):
    form = superuser_client.get(f"{POLICIES}add/").context["adminform"].form

    assert (form["compression_level"].value(), form["verify_sample_percent"].value()) == (2, 10)
    assert form["schedule"].value() and form["storage"].value() == "local"


def test_a_path_holding_the_backups_is_refused(superuser_client, backup_dir):
    response = superuser_client.post(f"{POLICIES}add/", policy_data(paths=str(backup_dir.parent)))

    assert "backups would archive backups" in " ".join(response.context["adminform"].form.errors["paths"])


def test_a_policy_with_nothing_to_back_up_is_refused(superuser_client):
    response = superuser_client.post(f"{POLICIES}add/", policy_data(databases=[], include_media=None, paths=""))

    assert "Nothing to back up" in str(response.context["adminform"].form.non_field_errors())


def test_an_unencrypted_policy_says_so_on_its_page_and_in_the_list(superuser_client):
    policy = BackupPolicy.objects.get(name="default")  # the migration's: no recipient
    page = superuser_client.get(f"{POLICIES}{policy.pk}/change/").content.decode()
    listing = superuser_client.get(POLICIES).content.decode()

    assert "Encryption is OFF" in page and "backup keygen" in page
    assert "backup-encryption-off" in listing


def test_an_encrypted_policy_has_no_warning(superuser_client):
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    policy = BackupPolicy.objects.create(name="sealed", recipients=recipient)

    assert "Encryption is OFF" not in superuser_client.get(f"{POLICIES}{policy.pk}/change/").content.decode()


def test_the_system_check_warns_about_enabled_policies_without_recipients():
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    BackupPolicy.objects.create(name="sealed", recipients=recipient)
    BackupPolicy.objects.create(name="off", enabled=False)

    [warning] = backups_encrypted(None, databases=["default"])

    assert isinstance(warning, CheckWarning) and warning.id == "backups.W001"
    assert "default" in warning.msg and "sealed" not in warning.msg and "off" not in warning.msg
    BackupPolicy.objects.filter(name="default").update(recipients=recipient)
    assert backups_encrypted(None, databases=["default"]) == []
    assert backups_encrypted(None, databases=None) == []  # only `check --database default` reads the database


# ---------------------------------------------------------------- actions


@pytest.mark.parametrize(("action", "button"), [("run_now", "run"), ("verify_now", "verify"), ("drill_now", "drill")])
def test_the_actions_and_buttons_queue_one_task_per_policy_after_commit(
    superuser_client, django_capture_on_commit_callbacks, action, button
):
    policy = BackupPolicy.objects.get(name="default")
    with django_capture_on_commit_callbacks() as queued:
        response = superuser_client.post(POLICIES, {"action": action, "_selected_action": [policy.pk]})
    assert len(queued) == 1 and "Queued a" in said(response)[0] and "default" in said(response)[0]

    with django_capture_on_commit_callbacks() as queued:
        response = superuser_client.post(f"{POLICIES}{policy.pk}/operate/", {"do": button})
    assert response.status_code == HTTPStatus.FOUND and len(queued) == 1


@pytest.mark.django_db(transaction=True)  # the task runs the backup, which refuses to run inside a transaction
def test_run_now_makes_a_backup(superuser_client, superuser, django_capture_on_commit_callbacks, tasks_run_inline):
    policy = BackupPolicy.objects.get(name="default")
    BackupPolicy.objects.filter(pk=policy.pk).update(include_media=False, verify_after=False)

    with django_capture_on_commit_callbacks(execute=True):
        superuser_client.post(POLICIES, {"action": "run_now", "_selected_action": [policy.pk]})

    backup = Backup.objects.get(policy=policy)
    assert backup.status == Status.SUCCEEDED, backup.error
    assert backup.trigger == Trigger.MANUAL


def test_staff_who_may_only_view_policies_cannot_run_them(staff_client, staff_user, django_capture_on_commit_callbacks):
    grant(staff_user, "view_backuppolicy")
    policy = BackupPolicy.objects.get(name="default")

    with django_capture_on_commit_callbacks() as queued:
        page = staff_client.get(f"{POLICIES}{policy.pk}/change/").content.decode()
        refused = staff_client.post(f"{POLICIES}{policy.pk}/operate/", {"do": "run"})

    assert "Run now" not in page
    assert refused.status_code == HTTPStatus.FORBIDDEN and queued == []


def test_an_unknown_operation_is_refused_politely(superuser_client, django_capture_on_commit_callbacks):
    policy = BackupPolicy.objects.get(name="default")
    with django_capture_on_commit_callbacks() as queued:
        response = superuser_client.post(f"{POLICIES}{policy.pk}/operate/", {"do": "explode"})

    assert "Unknown operation" in said(response)[0] and queued == []
    assert superuser_client.get(f"{POLICIES}{policy.pk}/operate/").status_code == HTTPStatus.METHOD_NOT_ALLOWED


# ---------------------------------------------------------------- records


def test_the_backup_list_and_page_show_status_size_and_the_manifest(superuser_client):
    backup = stored_backup(BackupPolicy.objects.get(name="default"))
    Drill.objects.create(backup=backup, policy=backup.policy, status=Status.SUCCEEDED, started_at=timezone.now(),
                         checks=[{"name": "row counts", "ok": True, "detail": "12 tables equal"}])  # fmt: skip

    listing = superuser_client.get(BACKUPS).content.decode()
    page = superuser_client.get(f"{BACKUPS}{backup.pk}/change/").content.decode()

    assert "backup-status-succeeded" in listing and "backup-verification-ok" in listing
    assert "29.3\xa0KB" in listing  # len(ARTIFACT): 30,000 bytes
    assert 'id="backups-live"' in listing and "opsportal/backups.js" in listing
    assert "files.tar.zst" in page and "2 files" in page and "python 3.11" in page and "1 migrations" in page
    assert f"{BACKUPS}{backup.pk}/download/files.tar.zst" in page
    assert "Restore drills" in page and "✔" in page
    assert superuser_client.get(f"{DRILLS}{Drill.objects.get().pk}/change/").content.decode().count("passed") >= 1


def test_backups_are_records_nobody_edits(superuser_client):
    backup = stored_backup(BackupPolicy.objects.get(name="default"))

    page = superuser_client.get(f"{BACKUPS}{backup.pk}/change/")

    assert 'name="_save"' not in page.content.decode()
    assert superuser_client.get(f"{BACKUPS}add/").status_code == HTTPStatus.FORBIDDEN
    assert superuser_client.post(f"{BACKUPS}{backup.pk}/delete/", {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert Backup.objects.filter(pk=backup.pk).exists()


def test_download_streams_the_stored_bytes_and_is_audited(staff_client, staff_user):
    grant(staff_user, "view_backup", "download_backup")
    backup = stored_backup(BackupPolicy.objects.get(name="default"))

    response = staff_client.get(f"{BACKUPS}{backup.pk}/download/files.tar.zst")

    assert response.status_code == HTTPStatus.OK
    assert b"".join(response.streaming_content) == ARTIFACT
    assert response["Content-Length"] == str(len(ARTIFACT))
    assert 'attachment; filename="files.tar.zst"' in response["Content-Disposition"]
    event = AuditEvent.objects.get(action="backup.download")
    assert event.actor_username == "bob" and event.resource_id == str(backup.pk)
    assert event.details["file"] == "files.tar.zst"


def test_download_needs_its_own_permission(staff_client, staff_user):
    grant(staff_user, "view_backup")
    backup = stored_backup(BackupPolicy.objects.get(name="default"))

    page = staff_client.get(f"{BACKUPS}{backup.pk}/change/").content.decode()
    response = staff_client.get(f"{BACKUPS}{backup.pk}/download/files.tar.zst")

    assert "/download/" not in page
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not AuditEvent.objects.filter(action="backup.download").exists()


def test_only_the_backups_own_files_can_be_downloaded(superuser_client):
    backup = stored_backup(BackupPolicy.objects.get(name="default"))

    for name in ("..%2F..%2Fetc%2Fpasswd", "db-default.sqlite3.zst", ".files.tar.zst.part-x"):
        assert superuser_client.get(f"{BACKUPS}{backup.pk}/download/{name}").status_code == HTTPStatus.NOT_FOUND
    backup.pruned_at = timezone.now()
    backup.save(update_fields=["pruned_at"])
    assert superuser_client.get(f"{BACKUPS}{backup.pk}/download/files.tar.zst").status_code == HTTPStatus.NOT_FOUND


def test_staff_without_the_view_permission_see_no_backups(staff_client):
    backup = stored_backup(BackupPolicy.objects.get(name="default"))

    for url in (BACKUPS, f"{BACKUPS}{backup.pk}/change/", POLICIES, DRILLS,
                f"{BACKUPS}{backup.pk}/download/files.tar.zst"):  # fmt: skip
        assert staff_client.get(url).status_code == HTTPStatus.FORBIDDEN, url


def test_delete_removes_the_files_through_the_service_and_keeps_the_record(superuser_client, backup_dir):
    backup = stored_backup(BackupPolicy.objects.get(name="default"))
    assert (backup_dir / backup.location / "files.tar.zst").exists()

    response = superuser_client.post(BACKUPS, {"action": "delete_files", "_selected_action": [backup.pk]})

    backup.refresh_from_db()
    assert backup.pruned_at is not None and not (backup_dir / backup.location).exists()
    assert "Deleted the files of 1 backup" in said(response)[0]
    assert AuditEvent.objects.filter(action="backup.delete", resource_id=str(backup.pk)).exists()


def test_verify_checks_the_stored_bytes_and_reports_a_failure(superuser_client):
    backup = stored_backup(BackupPolicy.objects.get(name="default"), started_at=timezone.now() - timedelta(hours=1))

    response = superuser_client.post(BACKUPS, {"action": "verify", "_selected_action": [backup.pk]})

    backup.refresh_from_db()
    assert backup.verification == Verification.FAILED  # no manifest file in storage, and sha256 "000..."
    assert any("Verification FAILED" in message for message in said(response))
