"""The checks other apps offer through apps.core.health_hooks (health may not import them), as health Checks."""

from collections.abc import Iterable

from apps.core import health_hooks
from apps.health.checks.base import Check, Outcome, Status, registry


@registry.provider
def hooked_checks() -> Iterable[Check]:
    for hooked in health_hooks.registered():
        options = dict(hooked.options)
        yield Check(
            hooked.name,
            lambda check=hooked.check: outcome(*check()),
            for_seconds=options.get("for_seconds"),
            alert_on=Status(options.get("alert_on", Status.CRITICAL)),
            timeout=options.get("timeout"),
            description=options.get("description", ""),
            alerts=options.get("alerts", True),
        )


def outcome(status: str, message: str, details: dict) -> Outcome:
    return Outcome(Status(status), message, dict(details))
