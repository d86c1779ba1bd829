"""Views that exist only for the tests: they queue a task from inside a request."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from apps.core.tasks import ping


def queue_ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"task_id": ping.delay().id})


urlpatterns = [path("queue-ping/", queue_ping)]
