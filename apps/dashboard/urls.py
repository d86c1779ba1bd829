"""/admin/dashboard/...: inside the admin, behind its login and staff check (admin_view), before admin.site.urls."""

from django.contrib import admin
from django.urls import path

from apps.dashboard import pages, views

app_name = "dashboard"
urlpatterns = [
    path("", admin.site.admin_view(pages.dashboard_page), name="page"),
    path("series", admin.site.admin_view(views.series), name="series"),
    path("alerts/<int:pk>/acknowledge", admin.site.admin_view(views.acknowledge), name="acknowledge"),
]
