"""Redaction of secrets: in log lines, audit details and anything else written down."""

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

REDACTED = "***"
SENSITIVE_KEY = re.compile(r"pass(word|wd)?|secret|token|authori[sz]ation|cookie|api[-_]?key|credential", re.I)
# key=value / key: value pairs, URL credentials and capability URLs inside free text. A heartbeat's ping URL
# (/hooks/heartbeat/<uuid>) is its only credential: request log lines keep the path without it.
SENSITIVE_TEXT = re.compile(
    r"(?P<key>\b(?:password|passwd|secret|token|api[-_]?key|cookie)\b\s*[=:]\s*)(?P<value>[^\s,;&]+)"
    r"|(?P<auth>\bauthori[sz]ation\b\s*[=:]\s*)(?P<credential>(?:(?:bearer|basic|token)\s+)?[^\s,;&]+)"
    r"|(?P<scheme>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<urlpass>[^\s@/]+)(?=@)"
    r"|(?P<capability>/hooks/heartbeat/)(?P<code>[^\s/?#'\"]+)",
    re.I,
)

# A cheap test that rules out most text before the full pattern runs.
MAYBE_SENSITIVE_TEXT = re.compile(r"pass|secret|token|api|cookie|authori|://|/hooks/heartbeat/", re.I)


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    return SENSITIVE_KEY.search(key) is not None


def redact(value: Any, *, depth: int = 0) -> Any:
    """Return value with secrets replaced by ***: sensitive keys, in nested dicts and lists, and secrets in text."""
    if depth > 20:
        return value
    if isinstance(value, str):
        return SENSITIVE_TEXT.sub(_mask, value) if MAYBE_SENSITIVE_TEXT.search(value) else value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_sensitive_key(key) else redact(item, depth=depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item, depth=depth + 1) for item in value]
    return value


def _mask(match: re.Match) -> str:
    prefix = match.group("key") or match.group("auth") or match.group("scheme") or match.group("capability")
    return f"{prefix}{REDACTED}"
