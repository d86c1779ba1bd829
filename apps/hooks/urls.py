from django.urls import path

from apps.hooks.api import api

urlpatterns = [
    path("api/v1/", api.urls),
]
