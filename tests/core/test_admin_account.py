import pytest
from django.contrib.auth import get_user_model

from apps.core.services import admin_account_ensure

pytestmark = pytest.mark.django_db


def test_the_admin_gets_the_configured_password_stored_only_as_a_hash():
    account = admin_account_ensure(password="configured-password-1")

    admin = get_user_model().objects.get(username="admin")
    assert account.created and account.generated_password is None
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("configured-password-1")
    assert "configured-password-1" not in admin.password


def test_without_a_configured_password_one_is_generated_and_returned_once():
    account = admin_account_ensure(password="")

    assert len(account.generated_password) >= 20
    assert get_user_model().objects.get(username="admin").check_password(account.generated_password)
    assert admin_account_ensure(password="") is None


def test_an_existing_superuser_means_nothing_is_created(superuser):
    assert admin_account_ensure(password="another-password-1") is None
    assert not get_user_model().objects.filter(username="admin").exists()


def test_a_plain_user_called_admin_is_not_promoted(django_user_model):
    django_user_model.objects.create_user("admin", password="plain-user-password")

    account = admin_account_ensure(password="x-password-123")

    assert account == account.__class__(username="admin", created=False)
    assert not django_user_model.objects.get(username="admin").is_superuser
