import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection

from apps.audit import chain
from apps.audit.models import AuditEvent


@pytest.fixture(autouse=True)
def fresh_chain(request):
    """Each test starts its own stretch of chain, after whatever an earlier test left behind.

    (A flush on SQLite deletes audit events before users, so the user deletions
    leave events behind; on PostgreSQL TRUNCATE leaves none.)
    """
    if "django_db" not in {mark.name for mark in request.node.iter_markers()}:
        return
    from apps.audit.models import AuditCheckpoint

    request.getfixturevalue("db") if not request.node.get_closest_marker("django_db").kwargs.get(
        "transaction"
    ) else request.getfixturevalue("transactional_db")
    chain.seal()
    last = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()
    if last:
        AuditCheckpoint.objects.create(seq=last[0], hash=last[1], pruned=0)


@pytest.fixture
def sealed_events():
    """Seal what the test wrote, then return all events in chain order."""

    def events() -> list[AuditEvent]:
        chain.seal()
        return list(AuditEvent.objects.filter(seq__gt=chain.head_start()).order_by("seq"))

    return events


@pytest.fixture
def behind_the_orms_back():
    """A cursor that bypasses every guard, as a database superuser could."""

    def run(sql: str, params: list | None = None) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off, superuser only
            cursor.execute(sql, params or [])

    return run


@contextmanager
def scratch_postgres_url(base_url: str) -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    name = f"opsportal_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
