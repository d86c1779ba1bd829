"""Django's model backend behind the failed-login throttle."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from apps.audit import login_protection
from apps.core import context


class ThrottledModelBackend(ModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        username = username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        ip = context.current().ip
        decision = login_protection.reserve(str(username), ip)
        if not decision.allowed:
            if request is not None:
                request.login_retry_after = decision.retry_after
            raise PermissionDenied("too many failed logins")  # stops here; Django reports the failure
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_protection.succeeded(str(username), ip)
        return user
