"""Typed readers for the environment, used by settings.py only.

Every reader takes the variable's name and default and returns a Python value.
A bad value stops start-up with one line on stderr that names the variable and
what is allowed, and exit status 78 (EX_CONFIG) — never a traceback, whichever
program (manage.py, uvicorn, celery) imported the settings.
"""

import ipaddress
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import environ

EX_CONFIG = 78

env = environ.FileAwareEnv()


def fail(name: str, value: object, allowed: str) -> NoReturn:
    sys.stderr.write(f"opsportal: configuration error: {name}={value!r} is not valid: {allowed}\n")
    raise SystemExit(EX_CONFIG)


def _raw(name: str) -> str | None:
    value = env.str(name, default=None)
    return None if value is None else value.strip()


def string(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = _raw(name)
    if raw is None or raw == "":
        return default
    bounds = f"a whole number{f' >= {minimum}' if minimum is not None else ''}"
    bounds += f"{' and' if minimum is not None and maximum is not None else ''}"
    bounds += f"{f' <= {maximum}' if maximum is not None else ''}"
    try:
        value = int(raw)
    except ValueError:
        fail(name, raw, bounds)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        fail(name, raw, bounds)
    return value


def number(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = _raw(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        fail(name, raw, f"a number >= {minimum}")
    if not value >= minimum:  # also rejects nan
        fail(name, raw, f"a number >= {minimum}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    fail(name, raw, "true or false (also 1/0, yes/no, on/off)")


def choice(name: str, default: str, choices: list[str]) -> str:
    raw = _raw(name)
    if raw is None or raw == "":
        return default
    for allowed in choices:
        if raw.lower() == allowed.lower():
            return allowed
    fail(name, raw, "one of " + ", ".join(choices))


def words(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    raw = _raw(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of IP addresses or CIDR networks."""
    result = []
    for item in words(name, default):
        try:
            result.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            fail(name, item, "comma-separated IP addresses or networks, e.g. 10.0.0.0/8,::1")
    return result


def url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = _raw(name)
    if raw is None or raw == "":
        return default
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        fail(name, _without_password(raw), f"a URL starting with {' or '.join(s + '://' for s in schemes)}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        fail(name, _without_password(raw), "a URL with a port between 0 and 65535")
    return raw


def database(name: str, default_sqlite: Path) -> dict:
    """DATABASES['default'] from a postgres:// or sqlite:// URL."""
    raw = url(name, "", ("postgres", "postgresql", "pgsql", "sqlite"))
    if not raw:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    parts = urlsplit(raw)
    if parts.scheme != "sqlite" and not (parts.hostname and parts.path.strip("/")):
        fail(name, _without_password(raw), "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    return env.db_url_config(raw)


def _without_password(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.password:
        return raw.replace(f":{parts.password}@", ":***@", 1)
    return raw
