import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class AdminAccount:
    username: str
    created: bool
    generated_password: str | None = None


@transaction.atomic
def admin_account_ensure(*, password: str = "") -> AdminAccount | None:
    """Create the `admin` superuser when no superuser exists yet.

    The password is `password`, or a random one returned here so the caller can
    show it once; only its hash is stored. Returns None when a superuser exists.
    """
    users = get_user_model()
    if users.objects.filter(is_superuser=True).exists():
        return None
    if users.objects.filter(username=ADMIN_USERNAME).exists():
        return AdminAccount(username=ADMIN_USERNAME, created=False)
    generated = None if password else secrets.token_urlsafe(18)
    users.objects.create_superuser(ADMIN_USERNAME, email="", password=password or generated)
    return AdminAccount(username=ADMIN_USERNAME, created=True, generated_password=generated)
