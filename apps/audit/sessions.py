"""Deactivating a user ends their sessions, so that reactivating the account does not revive them."""

from typing import Any

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone


def end_sessions(user_id: Any) -> int:
    """Delete the user's unexpired sessions; returns how many.

    Sessions are not indexed by user, so this reads the live ones: a few
    hundred rows for a portal's staff, and only when an account is deactivated.
    """
    mine = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=500)
        if session.get_decoded().get(SESSION_KEY) == str(user_id)
    ]
    return Session.objects.filter(pk__in=mine).delete()[0]


@receiver(pre_save, sender=get_user_model(), dispatch_uid="opsportal_end_sessions_on_deactivation")
def _deactivated(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is None or instance.is_active:
        return
    if sender.objects.filter(pk=instance.pk, is_active=True).exists():
        user_id = instance.pk
        transaction.on_commit(lambda: end_sessions(user_id))
