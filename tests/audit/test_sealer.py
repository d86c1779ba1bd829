"""Sealing: a direct call counts what it sealed; on PostgreSQL a busy sealer is not waited for;
the background thread seals what commits wake it for."""

import time

import psycopg
import pytest
from django.db import connection, transaction
from django.test import override_settings

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.audit.sealer import sealer
from apps.audit.services import record
from tests.conftest import POSTGRES_URL


def unsealed() -> int:
    return AuditEvent.objects.filter(seq__isnull=True).count()


@pytest.mark.django_db
def test_a_direct_seal_seals_in_batches_and_says_how_many():
    for n in range(7):
        record("custom.batch", details={"n": n})

    assert chain.seal(batch=3) == 7
    assert unsealed() == 0 and chain.seal() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_second_sealer_does_not_queue_behind_the_first():
    record("custom.waiting")
    with psycopg.connect(POSTGRES_URL, dbname=connection.settings_dict["NAME"]) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [chain.SEAL_LOCK])  # a sealer elsewhere, at work
        started = time.monotonic()
        assert chain.seal() == 0
        assert time.monotonic() - started < 1.0 and unsealed() == 1
    assert chain.seal() == 1 and unsealed() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_background_sealer_seals_what_a_commit_wakes_it_for(django_user_model):
    # (On SQLite, tests/audit/test_concurrency.py runs it on a database file; the
    # suite's in-memory SQLite database has no room for a second writer.)
    with override_settings(AUDIT_SEAL_IN_BACKGROUND=True):
        try:
            with transaction.atomic():
                django_user_model.objects.create_user("woken")
            deadline = time.monotonic() + 10
            while unsealed() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert unsealed() == 0
            assert sealer.is_alive()
        finally:
            sealer.stop()
    assert not sealer.is_alive()
