"""Views for the middleware's tests: one that answers, one that fails, one that raises."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def fine(request: HttpRequest) -> HttpResponse:
    return HttpResponse("fine")


def unavailable(request: HttpRequest) -> HttpResponse:
    return HttpResponse("try later", status=503)


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [
    path("fine/", fine, name="fine"),
    path("unavailable/", unavailable, name="unavailable"),
    path("broken/", broken, name="broken"),
]
