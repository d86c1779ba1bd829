from django.urls import path

from apps.hooks.api import api, problems
from apps.hooks.views import alertmanager, events
from apps.hooks.views.heartbeat import ENDINGS, heartbeat_ping

urlpatterns = [
    path("api/v1/", problems.urls(api)),
    # <str:>, not <slug:>: a name no receiver can have is answered (and counted) by the hook as 404 too.
    path("hooks/alertmanager/<str:name>/", alertmanager.receive, name="hooks-alertmanager"),
    path("hooks/events/<slug:name>/", events.receive, name="hooks_events"),
    # Without the slash too: a sender told the URL without it would not follow a redirect with its POST.
    path("hooks/events/<slug:name>", events.receive),
    # A job may ping with or without a trailing slash; the named URLs (without) are the ones shown.
    *[path(f"hooks/heartbeat/<str:code>{ending}", heartbeat_ping, {"kind": kind}, name=f"hooks-heartbeat-{kind}")
      for kind, ending in ENDINGS.items()],
    *[path(f"hooks/heartbeat/<str:code>{ending}/", heartbeat_ping, {"kind": kind}) for kind, ending in ENDINGS.items()],
]  # fmt: skip
