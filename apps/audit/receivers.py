"""Authentication events, recorded at Django's signals."""

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from apps.audit.models import Outcome
from apps.audit.services import record


@receiver(user_logged_in, dispatch_uid="opsportal_audit_login")
def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record("auth.login", actor=user, resource=user)


@receiver(user_logged_out, dispatch_uid="opsportal_audit_logout")
def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record("auth.logout", actor=user, resource=user)


@receiver(user_login_failed, dispatch_uid="opsportal_audit_login_failed")
def _login_failed(sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django has already masked the password in credentials; only the username is kept.
    username = str(credentials.get("username", ""))[:150]
    details = {"username": username}
    if getattr(request, "login_retry_after", None):
        details["locked_out_seconds"] = request.login_retry_after
    record("auth.login_failed", outcome=Outcome.FAILURE, details=details)
