import pytest
from django.db import connection

from apps.audit import chain
from apps.audit.models import AuditEvent


@pytest.fixture
def sealed_events():
    """Seal what the test wrote, then return all events in chain order."""

    def events() -> list[AuditEvent]:
        chain.seal()
        return list(AuditEvent.objects.order_by("seq"))

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
