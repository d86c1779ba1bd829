"""Django system checks (run by `manage.py check`): settings of the health checks that cannot work as meant."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def health_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for path in settings.HEALTH_DISK_PATHS:
        if not Path(path).exists():
            messages.append(
                Warning(
                    f"HEALTH_DISK_PATHS names {path}, which does not exist: the disk check is critical.",
                    hint="Create it, or list only existing paths.",
                    id="opsportal.W301",
                )
            )
    timeout, interval = settings.HEALTH_CHECK_TIMEOUT_SECONDS, settings.HEALTH_INTERVAL_SECONDS
    if timeout >= interval:
        messages.append(
            Warning(
                f"HEALTH_CHECK_TIMEOUT_SECONDS ({timeout}) is not shorter than HEALTH_INTERVAL_SECONDS "
                f"({interval}): a hanging check outlasts the next scheduled run.",
                hint="Make the timeout shorter than the interval.",
                id="opsportal.W302",
            )
        )
    return messages
