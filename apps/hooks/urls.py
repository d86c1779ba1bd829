from django.urls import path

from apps.hooks import views_events
from apps.hooks.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("hooks/events/<slug:name>/", views_events.receive, name="hooks_events"),
    # Without the slash too: a sender told the URL without it would not follow a redirect with its POST.
    path("hooks/events/<slug:name>", views_events.receive),
]
