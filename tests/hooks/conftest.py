"""Fixtures for the API and the hooks: tokens of each scope, and clients that send them."""

import uuid
from collections.abc import Callable

import pytest
from django.test import Client

from apps.core.standard_webhooks import new_secret
from apps.hooks import tokens
from apps.hooks.models import Scope, WebhookEndpoint


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
def write_client(superuser, make_token) -> Client:
    """A client sending a write-scoped token of a superuser."""
    return Client(headers={"authorization": f"Bearer {make_token(superuser, Scope.WRITE)}"})


@pytest.fixture
def make_endpoint() -> Callable[..., WebhookEndpoint]:
    """make_endpoint(name="incidents", mapping={...}, **fields) -> a Standard Webhooks endpoint with a fresh secret."""

    def make(name: str = "incidents", mapping: dict | None = None, **fields) -> WebhookEndpoint:
        return WebhookEndpoint.objects.create(name=name, secret=new_secret(), mapping=mapping or {}, **fields)

    return make


@pytest.fixture
def own_counters(settings) -> None:
    """Cache keys of this test's own: the rejection counts live in the cache, which on Redis other test processes
    share, so a count compared before and after would include theirs."""
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "KEY_PREFIX": uuid.uuid4().hex}}
