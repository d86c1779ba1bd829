from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from apps.core.views import metrics

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("apps.health.urls")),
]
if settings.PROMETHEUS_ENABLED:
    urlpatterns.append(path("metrics", metrics, name="metrics"))
