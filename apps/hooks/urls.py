from django.urls import path

from apps.hooks.api import api
from apps.hooks.views import alertmanager

urlpatterns = [
    path("api/v1/", api.urls),
    # <str:>, not <slug:>: a name no receiver can have is answered (and counted) by the hook as 404 too.
    path("hooks/alertmanager/<str:name>/", alertmanager.receive, name="hooks-alertmanager"),
]
