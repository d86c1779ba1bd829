"""Database checks (run by `manage.py check --database default`): will an alert reach anybody?"""

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError

from apps.alerts.models import NotificationChannel, Route


@register(Tags.database)
def alerts_routing(app_configs: Any, databases: list[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    if "default" not in (databases or []):
        return []
    try:
        has_default = Route.objects.filter(is_default=True).exists()
        has_channel = NotificationChannel.objects.filter(enabled=True).exists()
    except DatabaseError:  # not migrated yet: migrate says so
        return []
    messages: list[CheckMessage] = []
    if not has_channel:
        messages.append(Warning("No notification channel is enabled: alerts notify nobody.",
                                hint="Add one under Alerts > Notification channels.", id="opsportal.W201"))  # fmt: skip
    if not has_default:
        messages.append(Warning("There is no default route: an alert that matches no route notifies nobody.",
                                hint="Tick 'is default' on a catch-all route.", id="opsportal.W202"))  # fmt: skip
    return messages
