from django.urls import path

from apps.hooks.api import api
from apps.hooks.views_heartbeat import ENDINGS, heartbeat_ping

urlpatterns = [
    path("api/v1/", api.urls),
    # A job may ping with or without a trailing slash; the named URLs (without) are the ones shown.
    *[path(f"hooks/heartbeat/<str:code>{ending}", heartbeat_ping, {"kind": kind}, name=f"hooks-heartbeat-{kind}")
      for kind, ending in ENDINGS.items()],
    *[path(f"hooks/heartbeat/<str:code>{ending}/", heartbeat_ping, {"kind": kind}) for kind, ending in ENDINGS.items()],
]  # fmt: skip
