from django.urls import path

from apps.hooks.api import api, problems

urlpatterns = [
    path("api/v1/", problems.urls(api)),
]
