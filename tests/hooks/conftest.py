"""Fixtures for the API and the hooks: tokens of each scope, and clients that send them."""

from collections.abc import Callable, Iterator

import pytest
from django.test import Client

from apps.hooks import tokens
from apps.hooks.models import Scope
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


@pytest.fixture
def make_token() -> Callable[..., str]:
    """make_token(user, scope="read", **kwargs) -> the token itself (the row is created)."""

    def make(user, scope: str = Scope.READ, **kwargs) -> str:
        _, token = tokens.token_create(user=user, name=kwargs.pop("name", f"test-{scope}"), scope=scope, **kwargs)
        return token

    return make


@pytest.fixture
def read_client(superuser, make_token) -> Client:
    """A client sending a read-scoped token of a superuser (so only the scope limits it)."""
    return Client(headers={"authorization": f"Bearer {make_token(superuser, Scope.READ)}"})


@pytest.fixture
def api_client(make_token) -> Callable[..., Client]:
    """api_client(user, scope="read") -> a client sending a new token of that user (staff with chosen permissions)."""

    def make(user, scope: str = Scope.READ) -> Client:
        return Client(headers={"authorization": f"Bearer {make_token(user, scope)}"})

    return make


@pytest.fixture
def grant() -> Callable[..., None]:
    """grant(user, "app.codename", ...): give the user these permissions (and forget its cached ones)."""
    from django.contrib.auth.models import Permission

    def give(user, *permissions: str) -> None:
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        for cache in ("_perm_cache", "_user_perm_cache"):
            user.__dict__.pop(cache, None)

    return give


@pytest.fixture
def write_client(superuser, make_token) -> Client:
    """A client sending a write-scoped token of a superuser."""
    return Client(headers={"authorization": f"Bearer {make_token(superuser, Scope.WRITE)}"})
