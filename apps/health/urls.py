"""/healthz and /readyz (also answered by ProbeMiddleware, ahead of the host check) and /health/."""

from django.urls import path

from apps.health import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("health/", views.health, name="health"),
]
