"""Which route an alert follows and which group it is notified in; the routes and silences a process holds."""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from django.utils import timezone

from apps.alerts import matchers, queries
from apps.alerts.models import Route, Silence

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Rules:
    """Routes (in the order they are tried) and the silences not yet over, as of one routing stamp."""

    stamp: Any
    routes: list[Route]
    silences: list[Silence]


_held: dict[str, Rules] = {}


def rules() -> Rules:
    """The rules this process last loaded; whoever writes with them checks the stamp (services.alert_fire)."""
    return _held.get("rules") or load()


def load() -> Rules:
    """Load the rules now (the stamp first: a change committed meanwhile shows as a stamp that moved on)."""
    stamp = queries.routing_stamp()
    _held["rules"] = Rules(stamp, queries.routes(), queries.silences_not_over(timezone.now()))
    return _held["rules"]


def changed(**kwargs: Any) -> None:
    """A route or silence was saved or deleted: every process loads the rules again before it next uses them."""
    queries.new_routing_stamp()


def route_for(fields: Mapping[str, str], routes: list[Route]) -> Route | None:
    """The first route (by position) whose severities and matchers all match; else the default route; else None."""
    default = None
    for route in routes:
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
