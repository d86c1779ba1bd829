import pytest
from django.core import checks

from apps.alerts.models import EscalationPolicy, NotificationChannel, Route

pytestmark = pytest.mark.django_db


def ids() -> set[str]:
    return {message.id for message in checks.run_checks(databases=["default"]) if message.id.startswith("opsportal.W2")}


def test_without_a_channel_or_a_default_route_the_database_check_warns():
    assert ids() == {"opsportal.W201", "opsportal.W202"}


def test_with_a_channel_and_a_default_route_it_is_quiet():
    NotificationChannel.objects.create(name="ops-mail", kind="email", recipients="ops@example.org")
    Route.objects.create(name="all", is_default=True, policy=EscalationPolicy.objects.create(name="p"))

    assert ids() == set()
