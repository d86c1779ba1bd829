"""Which route an alert follows, and which group it is notified in."""

import hashlib
import json
from collections.abc import Mapping

import structlog

from apps.alerts import matchers
from apps.alerts.models import Route

logger = structlog.get_logger(__name__)


def route_for(fields: Mapping[str, str]) -> Route | None:
    """The first route (by position) whose severities and matchers all match; else the default route; else None."""
    default = None
    for route in Route.objects.select_related("policy").order_by("is_default", "position", "id"):
        if route.is_default:
            default = default or route
            continue
        if route.severities and fields["severity"] not in route.severities:
            continue
        try:
            rules = matchers.parse_all(route.matchers)
        except matchers.MatcherError:  # saved past the form's validation: it matches nothing
            logger.warning("route_unreadable", route=route.pk)
            continue
        if matchers.all_match(rules, fields):
            return route
    return default


def group_key(route: Route, fields: Mapping[str, str]) -> str:
    """Alerts of one route with the same values of its group_by labels share a key (and a notification)."""
    values = [[name, fields.get(name, "")] for name in route.group_by]
    return hashlib.sha256(json.dumps([route.pk, values]).encode()).hexdigest()[:32]
