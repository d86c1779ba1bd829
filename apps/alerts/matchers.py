"""Label matchers, as silences and routes write them: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.

A name is `source`, `key`, `severity`, or a label's name. Regular expressions
match the whole value (as in Alertmanager), and a missing label is the empty
string, so `team!=payments` matches an alert without a team.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,99}")
MATCHER = re.compile(rf"^\s*({LABEL_NAME.pattern})\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
MAX_PATTERN = 500


class MatcherError(ValueError):
    """A matcher that cannot be read; the message says why, for a form or a command line."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def matches(self, fields: Mapping[str, str]) -> bool:
        actual = fields.get(self.name, "")
        if self.pattern is not None:
            return (self.pattern.fullmatch(actual) is not None) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")


def parse(text: str) -> Matcher:
    if not isinstance(text, str):
        raise MatcherError(f"{text!r} is not a matcher; write name=value, name!=value, name=~regex or name!~regex")
    found = MATCHER.match(text)
    if not found:
        raise MatcherError(f"{text!r} is not a matcher; write name=value, name!=value, name=~regex or name!~regex")
    name, op, value = found.groups()
    pattern = None
    if op in ("=~", "!~"):
        if len(value) > MAX_PATTERN:
            raise MatcherError(f"the regular expression in {text[:40]!r}... is longer than {MAX_PATTERN} characters")
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise MatcherError(f"{value!r} in {text!r} is not a valid regular expression: {exc}") from None
    return Matcher(name, op, value, pattern)


def parse_all(texts: Iterable[str]) -> list[Matcher]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise MatcherError('matchers must be a list, e.g. ["source=health", "env=~prod-.*"]')
    return [parse(text) for text in texts]


def all_match(matchers: Iterable[Matcher], fields: Mapping[str, str]) -> bool:
    return all(matcher.matches(fields) for matcher in matchers)


def alert_fields(source: str, key: str, severity: str, labels: Mapping[str, str]) -> dict[str, str]:
    """What matchers see of an alert: its labels, then source, key and severity (which win over labels)."""
    return {**{str(k): str(v) for k, v in labels.items()}, "source": source, "key": key, "severity": severity}
