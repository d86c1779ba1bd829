"""Fixtures for the API and the hooks: tokens of each scope, clients that send them, and users with exactly
the permissions a test gives them."""

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.core.standard_webhooks import new_secret
from apps.hooks import tokens
from apps.hooks.models import Scope, WebhookEndpoint
from tests import services


@pytest.fixture(scope="session", autouse=True)
def broker_in_memory() -> Iterator[None]:
    """Tasks the API queues (a backup run, notifications after a commit) go to an in-memory broker.

    Not to var/broker/ (a developer's runportal would run them later) nor a real
    Redis; in place before anything queues, as the app keeps its first
    connection pool (tests/conftest.py's celery_worker uses the same broker).
    """
    with services.broker_in_memory():
        yield


@pytest.fixture(autouse=True)
def quick_passwords(fast_passwords) -> None:
    """Every persona hashes a password; the default hasher takes a second of a busy machine for each."""


@pytest.fixture(autouse=True)
def fresh_rate_counters(settings) -> None:
    """A cache namespace of the test's own: API rate counters start at zero, whoever else shares the cache
    (the other test processes on Redis count tokens with the same ids)."""
    settings.CACHES = {name: {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
                       for name, config in settings.CACHES.items()}  # fmt: skip


@pytest.fixture
def make_token() -> Callable[..., str]:
    """make_token(user, scope="read", **kwargs) -> the token itself (the row is created)."""

    def make(user, scope: str = Scope.READ, **kwargs) -> str:
        _, token = tokens.token_create(user=user, name=kwargs.pop("name", f"test-{scope}"), scope=scope, **kwargs)
        return token

    return make


@pytest.fixture
def bearer(make_token) -> Callable[..., Client]:
    """bearer(user, scope="write") -> a client sending a new token of that user."""

    def client(user, scope: str = Scope.WRITE) -> Client:
        return Client(headers={"authorization": f"Bearer {make_token(user, scope)}"})

    return client


@pytest.fixture
def api_client(bearer) -> Callable[..., Client]:
    """api_client(user, scope="read") -> a client sending a new token of that user (staff with chosen permissions)."""

    def make(user, scope: str = Scope.READ) -> Client:
        return bearer(user, scope)

    return make


@pytest.fixture
def grant() -> Callable[..., None]:
    """grant(user, "app.codename", ...): give the user these permissions (and forget its cached ones)."""

    def give(user, *permissions: str) -> None:
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        for cache in ("_perm_cache", "_user_perm_cache"):
            user.__dict__.pop(cache, None)

    return give


@pytest.fixture
def read_client(superuser, bearer) -> Client:
    """A client sending a read-scoped token of a superuser (so only the scope limits it)."""
    return bearer(superuser, Scope.READ)


@pytest.fixture
def write_client(superuser, bearer) -> Client:
    """A client sending a write-scoped token of a superuser."""
    return bearer(superuser, Scope.WRITE)


@pytest.fixture
def make_user(django_user_model, fast_passwords) -> Callable[..., object]:
    """make_user(name, "app.codename", ...) -> an active user with exactly these permissions (not staff)."""

    def make(name: str, *permissions: str, **fields) -> object:
        user = django_user_model.objects.create_user(name, f"{name}@example.org", "pw-of-a-test-user-1", **fields)
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return user

    return make


@pytest.fixture
def make_endpoint() -> Callable[..., WebhookEndpoint]:
    """make_endpoint(name="incidents", mapping={...}, **fields) -> a Standard Webhooks endpoint with a fresh secret."""

    def make(name: str = "incidents", mapping: dict | None = None, **fields) -> WebhookEndpoint:
        return WebhookEndpoint.objects.create(name=name, secret=new_secret(), mapping=mapping or {}, **fields)

    return make
