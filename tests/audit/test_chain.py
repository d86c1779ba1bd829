import itertools
import json

import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.services import record

pytestmark = pytest.mark.django_db


@pytest.fixture
def ten_events(sealed_events):
    """Ten sealed events: the whole chain since the test's checkpoint."""
    for n in range(10):
        record("custom.step", details={"n": n})
    return sealed_events()


def seq(events: list[AuditEvent], n: int) -> int:
    """The seq of the n-th of the ten events (1-based)."""
    return events[n - 1].seq


def first_break() -> chain.Break | None:
    return next((step for step in chain.verify(chunk=3) if isinstance(step, chain.Break)), None)


def test_an_untouched_chain_verifies_in_chunks(ten_events):
    steps = list(chain.verify(chunk=3))

    assert steps[-1] == 10 and not any(isinstance(step, chain.Break) for step in steps)
    assert [e.seq for e in ten_events] == list(range(seq(ten_events, 1), seq(ten_events, 1) + 10))
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(ten_events))


def test_an_edited_field_is_caught(ten_events, behind_the_orms_back):
    behind_the_orms_back("UPDATE audit_auditevent SET actor_username = 'mallory' WHERE seq = %s", [seq(ten_events, 4)])

    broken = first_break()
    assert (broken.seq, broken.problem) == (seq(ten_events, 4), "content changed")


def test_edited_details_are_caught(ten_events, behind_the_orms_back):
    behind_the_orms_back(
        "UPDATE audit_auditevent SET details = %s WHERE seq = %s", [json.dumps({"n": 70}), seq(ten_events, 7)]
    )

    assert first_break().seq == seq(ten_events, 7)


def test_a_deleted_row_is_caught(ten_events, behind_the_orms_back):
    behind_the_orms_back("DELETE FROM audit_auditevent WHERE seq = %s", [seq(ten_events, 5)])

    broken = first_break()
    assert (broken.seq, broken.problem) == (seq(ten_events, 5), "missing event")


def test_an_inserted_row_is_caught(ten_events, behind_the_orms_back):
    # Make room after seq 3 and slip a forged event in, with a plausible link.
    third = seq(ten_events, 3)
    behind_the_orms_back("UPDATE audit_auditevent SET seq = seq + 100000 WHERE seq > %s", [third])
    behind_the_orms_back("UPDATE audit_auditevent SET seq = seq - 99999 WHERE seq > 100000")
    behind_the_orms_back(
        "INSERT INTO audit_auditevent (timestamp, seq, actor_username, action, outcome, resource_type, resource_id,"
        " resource_repr, changes, details, user_agent, request_id, prev_hash, hash)"
        " VALUES (%s, %s, 'mallory', 'custom.forged', 'success', '', '', '', '{}', '{}', '', '', %s, %s)",
        [ten_events[2].timestamp, third + 1, ten_events[2].hash, "f" * 64],
    )

    broken = first_break()
    assert broken.seq == third + 1 and broken.problem == "content changed"


def test_a_reordered_pair_is_caught(ten_events, behind_the_orms_back):
    six, seven = seq(ten_events, 6), seq(ten_events, 7)
    behind_the_orms_back("UPDATE audit_auditevent SET seq = -1 WHERE seq = %s", [six])
    behind_the_orms_back("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [six, seven])
    behind_the_orms_back("UPDATE audit_auditevent SET seq = %s WHERE seq = -1", [seven])

    broken = first_break()
    assert (broken.seq, broken.problem) == (six, "broken link")


def test_the_command_exits_0_when_intact_and_1_with_the_first_break(ten_events, behind_the_orms_back, capsys):
    call_command("audit", "verify", "--json")
    intact = json.loads(capsys.readouterr().out)
    assert intact["intact"] and intact["verified"] == 10

    behind_the_orms_back("UPDATE audit_auditevent SET action = 'custom.other' WHERE seq = %s", [seq(ten_events, 2)])
    with pytest.raises(SystemExit) as exited:
        call_command("audit", "verify", "--json")
    report = json.loads(capsys.readouterr().out)
    assert exited.value.code == 1
    assert report["first_break"]["seq"] == seq(ten_events, 2) and report["verified"] == 1


def test_events_are_sealed_once_their_transaction_commits(transactional_db):
    record("custom.autocommit")
    from apps.audit.capture import seal_pending

    seal_pending()  # what the end of a request or task does

    assert AuditEvent.objects.get(action="custom.autocommit").seq is not None


@pytest.mark.postgres
def test_postgresql_itself_refuses_to_change_or_delete_sealed_events(ten_events):
    from django.db import DatabaseError, transaction

    from apps.audit.models import AuditCheckpoint

    AuditCheckpoint.objects.create(seq=0, hash="0" * 64, pruned=0)
    for sql in (
        f"UPDATE audit_auditevent SET action = 'x' WHERE seq = {seq(ten_events, 1)}",
        f"UPDATE audit_auditevent SET hash = 'x' WHERE seq = {seq(ten_events, 1)}",
        f"DELETE FROM audit_auditevent WHERE seq = {seq(ten_events, 1)}",
        "DELETE FROM audit_auditcheckpoint",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)


@pytest.mark.postgres
def test_a_runtime_role_with_the_documented_grants_cannot_switch_the_guards_off(ten_events, production_env):
    import uuid

    import psycopg
    from django.conf import settings

    from apps.audit.capture.postgresql import runtime_grants

    role = f"opsportal_rt_{uuid.uuid4().hex[:8]}"
    database = settings.DATABASES["default"]["NAME"]
    admin_url = production_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(runtime_grants(role))
    try:
        with psycopg.connect(admin_url.replace("postgres@", f"{role}@", 1), autocommit=True) as app:
            with app.transaction(force_rollback=True):  # appending works (and leaves nothing behind)
                app.execute("INSERT INTO audit_auditevent (action) VALUES ('custom.allowed')")
            for attempt in (
                "UPDATE audit_auditevent SET action = 'x' WHERE seq = 1",
                "DELETE FROM audit_auditevent WHERE seq = 1",
                "TRUNCATE audit_auditevent",
                "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
                "DROP TRIGGER opsportal_audit_guard_update ON audit_auditevent",
                "SET session_replication_role = replica",
                "SET ROLE postgres",
            ):
                with pytest.raises(psycopg.Error):
                    app.execute(attempt)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_the_database_check_warns_when_the_portal_could_switch_the_guards_off():
    from apps.audit.checks import audit_database

    ids = [message.id for message in audit_database(None, databases=["default"])]

    # Tests connect to PostgreSQL as a superuser; SQLite has no roles to speak of.
    assert ids == (["opsportal.W101"] if connection.vendor == "postgresql" else [])


@pytest.mark.parametrize(
    ("stored", "canonical"),
    [
        ("2026-11-23 20:10:00.123456", "2026-11-23T20:10:00.123456+00:00"),  # as Django writes it
        ("2026-11-23 20:10:00.123", "2026-11-23T20:10:00.123000+00:00"),  # as SQLite's own clock writes it
        ("2026-11-23 20:10:00", "2026-11-23T20:10:00.000000+00:00"),  # a whole second
    ],
)
def test_sqlite_timestamps_read_back_as_one_canonical_text(stored, canonical):
    assert chain._utc_text(stored) == canonical


def test_json_past_what_a_double_holds_is_hashed_as_stored_not_refused():
    content = ["2026-11-23T20:10:00.000000+00:00", None, "db:root", "model.update", "success", "x", "1", "",
               '{"n": [1e400, 2]}', "{}", None, "", ""]  # fmt: skip

    first = chain.canonical(content, seq=1, prev_hash=chain.GENESIS)

    assert first == chain.canonical(content, seq=1, prev_hash=chain.GENESIS)
    assert first != chain.canonical([*content[:8], '{"n": [1e300, 2]}', *content[9:]], seq=1, prev_hash=chain.GENESIS)
