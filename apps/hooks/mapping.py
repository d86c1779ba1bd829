"""An endpoint's mapping (WebhookEndpoint.mapping): which signed events fire or resolve which alert.

JSON, validated by EventMapping when saved in the admin and again when an event
arrives. Every member is optional; the defaults suit the payload the Standard
Webhooks specification recommends ({"type": ..., "timestamp": ..., "data": {...}}):

    {
      "type": "type",                         where the event type is; default "type"
      "fire": ["incident.opened"],            event types that fire the alert (or refresh it)
      "resolve": ["incident.closed"],         event types that resolve it
      "key": "data.id",                       the alert's key (same key, same alert); default "data.id"
      "summary": "data.title",                default "data.summary"
      "severity": "data.severity",            default "data.severity"; none found: "warning"
      "severities": {"P1": "critical", "P2": "error"},     the sender's words for the portal's
      "description": {"path": "data.url", "default": ""},            default "data.description" or ""
      "labels": {"service": "data.service", "env": {"default": "prod"}}
    }

A value comes from a dotted path into the event ("data.items.0.id": a number
indexes a list) or from {"path": ..., "default": ...}; {"default": ...} alone is a
constant. A path that leads to nothing, null, "", an object or a list gives the
default. Event types are matched exactly; other types are stored, not alerted on.

A fire without a key or summary, or with a severity that is not the portal's
(info, warning, error, critical) nor in "severities", or a resolve without a key, is
refused (MappingError, 400 naming the member and its path) and nothing is
stored: the sender retries, so once the mapping or the sender is fixed the event
still arrives, where accepting it would have lost the alert without a trace.
"""

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from apps.alerts.matchers import LABEL_NAME
from apps.alerts.models import Severity
from apps.alerts.services import MAX_LABELS
from apps.hooks.models import WebhookMessage

DEFAULT_SEVERITY = Severity.WARNING.value
KEY_MAX_LENGTH = WebhookMessage._meta.get_field("alert_key").max_length  # as Alert.key
PATH = re.compile(r"[^.\s]+(\.[^.\s]+){0,31}")  # at most 32 deep: the JSON itself is no deeper


class MappingError(ValueError):
    """The event cannot be mapped as its type says; the message names the member and its path."""


class InvalidMappingError(ValueError):
    """The mapping itself is wrong: `problems` are "member: message" lines, one per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _path(value: str) -> str:
    if not PATH.fullmatch(value):
        raise ValueError("a path is names separated by dots, e.g. data.id (no spaces, at most 32 parts)")
    return value


def _severity(value: str) -> str:
    if value not in Severity.values:
        raise ValueError(f"unknown severity {value!r}; use one of {', '.join(Severity.values)}")
    return value


def _shorthand(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


Path = Annotated[str, Field(max_length=500), AfterValidator(_path)]
EventType = Annotated[str, Field(min_length=1, max_length=200)]
PortalSeverity = Annotated[str, AfterValidator(_severity)]


class Value(BaseModel):
    """Where one value comes from: a path into the event, a default, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = None
    default: Annotated[str, Field(max_length=10_000)] | None = None

    @model_validator(mode="after")
    def _something(self) -> "Value":
        if self.path is None and self.default is None:
            raise ValueError('give a "path", a "default" or both')
        return self

    def read(self, event: Any) -> str | None:
        found = scalar(lookup(event, self.path)) if self.path is not None else None
        return found if found is not None else self.default

    def describe(self) -> str:
        return self.path if self.path is not None else "its default"


Source = Annotated[Value, BeforeValidator(_shorthand)]


class EventMapping(BaseModel):
    """A whole mapping (the module's docstring says what each member means)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The order matters: a member's validator sees only the members above it.
    type: Path = "type"
    fire: Annotated[list[EventType], Field(max_length=100)] = []
    resolve: Annotated[list[EventType], Field(max_length=100)] = []
    key: Source = Value(path="data.id")
    summary: Source = Value(path="data.summary")
    severities: dict[str, PortalSeverity] = {}
    severity: Source = Value(path="data.severity", default=DEFAULT_SEVERITY)
    description: Source = Value(path="data.description", default="")
    labels: Annotated[dict[str, Source], Field(max_length=MAX_LABELS)] = {}

    @field_validator("resolve")
    @classmethod
    def _not_both(cls, resolve: list[str], info: ValidationInfo) -> list[str]:
        both = sorted(set(resolve) & set(info.data.get("fire", ())))
        if both:
            raise ValueError(f"{', '.join(both)} cannot both fire and resolve")
        return resolve

    @field_validator("severity")
    @classmethod
    def _known_default(cls, severity: Value, info: ValidationInfo) -> Value:
        if severity.default is not None:
            _severity(info.data.get("severities", {}).get(severity.default, severity.default))
        return severity

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, Value]) -> dict[str, Value]:
        bad = [name for name in labels if not LABEL_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"label names start with a letter or _ and hold letters, digits, _ . : - (not {bad})")
        return labels

    def apply(self, event: Any) -> "Mapped":
        """What the event does: fire, resolve or nothing (stored); MappingError if it lacks what that needs."""
        event_type = (scalar(lookup(event, self.type)) or "")[:200]
        if event_type in self.fire:
            return Mapped(WebhookMessage.Outcome.FIRED, event_type, self._key(event), self._alert(event))
        if event_type in self.resolve:
            return Mapped(WebhookMessage.Outcome.RESOLVED, event_type, self._key(event))
        return Mapped(WebhookMessage.Outcome.STORED, event_type)

    def _key(self, event: Any) -> str:
        key = self._need("key", event)
        if len(key) > KEY_MAX_LENGTH:
            raise MappingError(f"key: {self.key.describe()} is longer than {KEY_MAX_LENGTH} characters")
        return key

    def _alert(self, event: Any) -> dict[str, Any]:
        severity = self.severity.read(event) or DEFAULT_SEVERITY  # not told how bad: still worth a page
        severity = self.severities.get(severity, severity)
        if severity.lower() not in Severity.values:
            raise MappingError(
                f"severity: {severity!r} (from {self.severity.describe()}) is not one of "
                f'{", ".join(Severity.values)}; add it to the mapping\'s "severities"'
            )
        labels = {name: value.read(event) for name, value in self.labels.items()}
        return {
            "summary": self._need("summary", event),
            "severity": severity.lower(),
            "description": self.description.read(event) or "",
            "labels": {name: text for name, text in labels.items() if text is not None},
        }

    def _need(self, member: str, event: Any) -> str:
        value: Value = getattr(self, member)
        found = value.read(event)
        if not found and value.path is None:
            raise MappingError(f"{member}: its default is empty")
        if not found:
            raise MappingError(f"{member}: the event has no {value.path} (a text or a number) and no default is set")
        return found


@dataclass(frozen=True)
class Mapped:
    """What to do with one event: its outcome, and for a fire or resolve the alert's key (and content)."""

    outcome: str
    event_type: str
    key: str = ""
    alert: dict[str, Any] = field(default_factory=dict)  # alert_fire's other arguments


def parse(raw: Any) -> EventMapping:
    """The mapping stored as `raw` (JSON); InvalidMappingError naming each mistake."""
    try:
        return EventMapping.model_validate({} if raw is None else raw)
    except ValidationError as error:
        raise InvalidMappingError([_problem(detail) for detail in error.errors()]) from None


def _problem(detail: Any) -> str:
    where = ".".join(str(part) for part in detail["loc"]) or "mapping"
    return f"{where}: {detail['msg'].removeprefix('Value error, ')}"


def lookup(event: Any, path: str) -> Any:
    """The value at a dotted path, or None."""
    current = event
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isascii() and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def scalar(value: Any) -> str | None:
    """Text for a string, number or boolean; None for anything else (null, "", objects, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def example_event(mapping: EventMapping, endpoint: str) -> dict[str, Any]:
    """An event this mapping fires on (or just stores, without fire types): for the admin's signing example."""
    event: dict[str, Any] = {}
    _place(event, mapping.type, mapping.fire[0] if mapping.fire else "example.event")
    values = {"key": "example-1", "summary": f"Example event sent to {endpoint}", "severity": "warning"}
    for member, text in values.items():
        value: Value = getattr(mapping, member)
        if value.path is not None:
            _place(event, value.path, text)
    return event


def _place(event: dict[str, Any], path: str, text: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        child = event.get(part)
        event = event.setdefault(part, {}) if child is None else child
        if not isinstance(event, dict):  # two paths disagree on the shape; the example leaves this one out
            return
    event.setdefault(last, text)
