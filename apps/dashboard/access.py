"""Who may read which topic, checked at connect and again every second for every open socket.

Channels authenticates a socket only at its handshake; a user who logs out, is
deactivated or loses a permission must lose the socket too. The hub checks all
of its sockets at once: one query for the sessions, one for the users and their
topic permissions (directly or through a group; superusers have all).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

TOPIC_PERMISSIONS = {
    "metrics": ("metrics", "view_series"),
    "health": ("health", "view_checkstate"),
    "alerts": ("alerts", "view_alert"),
    "audit": ("audit", "view_auditevent"),
}
TOPICS = frozenset(TOPIC_PERMISSIONS)


def current(user_ids: set[int], session_keys: set[str]) -> tuple[dict[int, frozenset[str]], set[str]]:
    """The topics each still active staff user may read (others are absent) and the sessions still alive."""
    sessions = set(
        Session.objects.filter(session_key__in=session_keys, expire_date__gt=timezone.now()).values_list(
            "session_key", flat=True
        )
    )
    granted = {
        f"may_{topic}": Exists(
            Permission.objects.filter(
                Q(user=OuterRef("pk")) | Q(group__user=OuterRef("pk")), content_type__app_label=app, codename=codename
            )
        )
        for topic, (app, codename) in TOPIC_PERMISSIONS.items()
    }
    users = get_user_model().objects.filter(pk__in=user_ids, is_active=True, is_staff=True).annotate(**granted)
    topics = {
        row["pk"]: frozenset(t for t in TOPICS if row["is_superuser"] or row[f"may_{t}"])
        for row in users.values("pk", "is_superuser", *granted)
    }
    return topics, sessions
