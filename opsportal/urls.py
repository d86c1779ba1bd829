from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from apps.core.views import metrics

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Before the admin's own urls: /admin/dashboard/ would otherwise be its (empty) app index.
    path("admin/dashboard/", include("apps.dashboard.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.health.urls")),
    path("", include("apps.hooks.urls")),
]
if settings.PROMETHEUS_ENABLED:
    urlpatterns.append(path("metrics", metrics, name="metrics"))
