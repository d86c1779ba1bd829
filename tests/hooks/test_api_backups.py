"""/api/v1/backups/: list with filters and pages, detail, run a policy (queued, 202), verify; who may."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from django.db import connection

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.backups import services
from apps.backups.lease import Lease
from apps.backups.models import Backup, BackupPolicy, Status, Trigger, Verification
from tests.backups import test_services, test_tick
from tests.backups.records import make_backup

# The backups tests' fixtures: a local storage, MEDIA_ROOT, and the backup tasks sent to the broker.
store, media, published = test_services.store, test_services.media, test_tick.published

pytestmark = pytest.mark.usefixtures("fast_passwords")
URL = "/api/v1/backups/"
START = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture
def policy(store, media) -> BackupPolicy:
    return BackupPolicy.objects.create(name="nightly", keep_last=10, keep_daily=0, keep_weekly=0, keep_monthly=0)


@pytest.fixture
def history(policy) -> list[Backup]:
    """Five records of two policies, oldest first: two failed, one running."""
    other = BackupPolicy.objects.create(name="hourly")
    return [
        make_backup(policy, START, status=Status.FAILED, verification=Verification.UNVERIFIED, error="disk full"),
        make_backup(policy, START + timedelta(days=1)),
        make_backup(other, START + timedelta(days=1, hours=1)),
        make_backup(other, START + timedelta(days=1, hours=2), status=Status.FAILED, error="timeout"),
        make_backup(policy, START + timedelta(days=2), status=Status.RUNNING, verification=Verification.UNVERIFIED),
    ]


def ids(response) -> list[int]:
    assert response.status_code == HTTPStatus.OK, response.content
    return [item["id"] for item in response.json()["items"]]


def post(client, url: str):
    return client.post(url, {}, content_type="application/json")


def fields(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


# ---------------------------------------------------------------- list and detail


@pytest.mark.django_db
def test_the_list_is_newest_first_with_the_policy_and_outcome(read_client, history):
    response = read_client.get(URL, {"policy": "nightly"})

    assert ids(response) == [history[4].pk, history[1].pk, history[0].pk]
    failed = response.json()["items"][2]
    assert (failed["policy"], failed["status"], failed["error"], failed["verification"]) == (
        "nightly", "failed", "disk full", "unverified")  # fmt: skip
    assert failed["duration_seconds"] == 42 and failed["created_by"] is None and failed["trigger"] == "manual"
    running = response.json()["items"][0]
    assert running["finished_at"] is None and running["duration_seconds"] is None


@pytest.mark.django_db
def test_the_list_filters_by_status_trigger_and_newer_than_and_pages(read_client, history):
    Backup.objects.filter(pk=history[2].pk).update(trigger=Trigger.SCHEDULE)

    assert ids(read_client.get(URL, {"status": "failed"})) == [history[3].pk, history[0].pk]
    assert ids(read_client.get(URL, {"policy": "hourly", "status": "failed"})) == [history[3].pk]
    assert ids(read_client.get(URL, {"trigger": "schedule"})) == [history[2].pk]
    assert ids(read_client.get(URL, {"newer_than": history[2].pk})) == [history[4].pk, history[3].pk]
    first = read_client.get(URL, {"limit": 2}).json()
    rest = read_client.get(URL, {"limit": 2, "cursor": first["next"]}).json()
    assert [item["id"] for item in first["items"] + rest["items"]] == [backup.pk for backup in history[::-1]][:4]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "lost"}, "status"), ({"trigger": "cron"}, "trigger"), ({"newer_than": "-1"}, "newer_than"),
     ({"cursor": "x1"}, "cursor"), ({"limit": "0"}, "limit")],
)  # fmt: skip
def test_a_bad_filter_is_a_400_naming_it(read_client, history, query, field):
    response = read_client.get(URL, query)
    assert response.status_code == HTTPStatus.BAD_REQUEST and fields(response) == [field]


@pytest.mark.django_db
def test_the_detail_lists_the_artifacts_of_the_manifest(read_client, policy, superuser):
    backup = make_backup(policy, START)
    artifact = {"name": "db-default.sqlite3.zst", "kind": "database", "size": 1000, "raw_size": 4000,
                "sha256": "ab" * 32, "tables": {"auth_user": 2}}  # fmt: skip
    Backup.objects.filter(pk=backup.pk).update(manifest={"artifacts": [artifact]}, manifest_sha256="cd" * 32,
                                               created_by=superuser)  # fmt: skip

    response = read_client.get(f"{URL}{backup.pk}/")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert (body["id"], body["policy"], body["created_by"], body["manifest_sha256"]) == (
        backup.pk, "nightly", "alice", "cd" * 32)  # fmt: skip
    assert body["artifacts"] == [{key: artifact[key] for key in ("name", "kind", "size", "raw_size", "sha256")}]


@pytest.mark.django_db
def test_an_unknown_backup_is_404_and_an_id_past_a_bigint_400(read_client, write_client):
    assert read_client.get(f"{URL}999999/").status_code == HTTPStatus.NOT_FOUND
    assert post(write_client, f"{URL}999999/verify/").status_code == HTTPStatus.NOT_FOUND
    too_big = read_client.get(f"{URL}99999999999999999999/")
    assert too_big.status_code == HTTPStatus.BAD_REQUEST and fields(too_big) == ["backup_id"]


# ---------------------------------------------------------------- run now


@pytest.mark.django_db
def test_run_now_queues_the_backup_task_and_answers_202_with_where_to_find_it(
    write_client, superuser, history, published
):
    response = post(write_client, f"{URL}policies/nightly/run/")

    assert response.status_code == HTTPStatus.ACCEPTED
    body = response.json()
    policy = BackupPolicy.objects.get(name="nightly")
    assert published == [("backup_run_task", [policy.pk, "manual", superuser.pk])]
    assert (body["policy"], body["newer_than"]) == ("nightly", history[-1].pk)
    assert response["Location"] == body["poll"] == f"{URL}?policy=nightly&newer_than={history[-1].pk}"
    assert ids(write_client.get(body["poll"])) == []  # until the worker starts it


@pytest.mark.django_db
def test_run_now_while_a_run_holds_the_policy_is_a_409_naming_it(write_client, history, published):
    policy = BackupPolicy.objects.get(name="nightly")
    lease = Lease.acquire(policy)
    try:
        response = post(write_client, f"{URL}policies/nightly/run/")
    finally:
        lease.release()

    assert response.status_code == HTTPStatus.CONFLICT
    assert f"backup {history[4].pk}" in response.json()["detail"] and published == []


@pytest.mark.django_db
def test_run_now_of_an_unknown_policy_is_404(write_client, published):
    assert post(write_client, f"{URL}policies/nonesuch/run/").status_code == HTTPStatus.NOT_FOUND
    assert published == []


@pytest.mark.django_db
def test_writes_refuse_a_read_token_and_credentials_are_required(read_client, client, history, published):
    for url in (f"{URL}policies/nightly/run/", f"{URL}{history[1].pk}/verify/"):
        refused = post(read_client, url)
        assert refused.status_code == HTTPStatus.FORBIDDEN and "write" in refused.json()["detail"]
        assert post(client, url).status_code == HTTPStatus.UNAUTHORIZED
    assert client.get(URL).status_code == HTTPStatus.UNAUTHORIZED
    assert client.get(f"{URL}{history[1].pk}/").status_code == HTTPStatus.UNAUTHORIZED
    assert published == []


@pytest.mark.django_db
def test_staff_need_the_admins_permissions(staff_client, staff_user, api_client, grant, history, published):
    writer, backup = api_client(staff_user, "write"), history[1]
    refused = [staff_client.get(URL), staff_client.get(f"{URL}{backup.pk}/"),
               post(writer, f"{URL}policies/nightly/run/"), post(writer, f"{URL}{backup.pk}/verify/")]  # fmt: skip
    assert [response.status_code for response in refused] == [HTTPStatus.FORBIDDEN] * 4

    grant(staff_user, "backups.view_backup", "backups.view_backuppolicy")
    assert staff_client.get(f"{URL}{backup.pk}/").status_code == HTTPStatus.OK
    running = post(writer, f"{URL}policies/nightly/run/")
    assert running.status_code == HTTPStatus.FORBIDDEN and "backups.change_backuppolicy" in running.json()["detail"]
    verifying = post(writer, f"{URL}{backup.pk}/verify/")
    assert verifying.status_code == HTTPStatus.FORBIDDEN and "backups.change_backup" in verifying.json()["detail"]

    grant(staff_user, "backups.change_backuppolicy")
    assert post(writer, f"{URL}policies/nightly/run/").status_code == HTTPStatus.ACCEPTED
    assert len(published) == 1


@pytest.fixture
def worker(request) -> Iterator[None]:
    """Queued tasks run: on PostgreSQL by the embedded worker's threads; on the suite's in-memory SQLite
    database (whose tables a second connection finds locked) in the queuing thread, Celery's eager mode."""
    if connection.vendor == "postgresql":
        request.getfixturevalue("celery_worker")
        yield
        return
    from opsportal.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.mark.django_db(transaction=True)  # the task runs the backup outside any transaction
def test_a_run_started_through_the_api_is_done_by_the_worker_and_found_by_polling(
    worker, write_client, superuser, policy
):
    BackupPolicy.objects.filter(pk=policy.pk).update(include_media=False)

    queued = post(write_client, f"{URL}policies/nightly/run/").json()
    deadline = time.monotonic() + 60
    while not (found := write_client.get(queued["poll"]).json()["items"]) or found[0]["status"] == "running":
        assert time.monotonic() < deadline, "the worker did not finish the backup"
        time.sleep(0.1)

    (backup,) = found
    assert (backup["status"], backup["trigger"], backup["created_by"]) == ("succeeded", "manual", "alice")
    assert backup["verification"] == "ok", backup["verify_error"]


# ---------------------------------------------------------------- verify


@pytest.mark.django_db(transaction=True)  # a backup runs outside transactions
def test_verify_rereads_the_backup_records_the_verdict_and_audits_who(write_client, superuser, policy, store):
    backup = services.backup_run(policy)
    path = store.root.joinpath(*backup.location.split("/"), "files.tar.zst")
    good = path.read_bytes()
    path.write_bytes(good[:10] + bytes([good[10] ^ 0x40]) + good[11:])

    failed = post(write_client, f"{URL}{backup.pk}/verify/")

    assert failed.status_code == HTTPStatus.OK
    assert failed.json()["ok"] is False and "SHA-256 does not match" in failed.json()["errors"][0]
    assert failed.json()["backup"]["verification"] == "failed"
    assert Alert.objects.get(source="backups", key="nightly:verify").is_open

    path.write_bytes(good)
    passed = post(write_client, f"{URL}{backup.pk}/verify/").json()
    assert passed["ok"] is True and passed["errors"] == [] and len(passed["checked"]) == 2
    assert passed["backup"]["verification"] == "ok"
    event = AuditEvent.objects.filter(action="backup.verify", resource_id=str(backup.pk)).latest("id")
    assert event.actor_username == "alice" and event.outcome == "success"


@pytest.mark.django_db
def test_verify_of_a_backup_without_stored_files_is_a_409(write_client, history):
    failed, running = history[0], history[4]
    Backup.objects.filter(pk=history[1].pk).update(pruned_at=START + timedelta(days=9))

    answers = [post(write_client, f"{URL}{backup.pk}/verify/") for backup in (failed, running, history[1])]

    assert [answer.status_code for answer in answers] == [HTTPStatus.CONFLICT] * 3
    assert "it is failed" in answers[0].json()["detail"] and "deleted" in answers[2].json()["detail"]
    assert not AuditEvent.objects.filter(action="backup.verify").exists()
