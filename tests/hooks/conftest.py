"""Fixtures for the API and the hooks: tokens of each scope, and clients that send them."""

from collections.abc import Callable

import pytest
from django.test import Client

from apps.hooks import tokens
from apps.hooks.models import Scope


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
