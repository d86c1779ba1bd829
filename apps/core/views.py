from http import HTTPStatus

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.core import prometheus
from apps.core.proxies import is_trusted
from apps.core.tokens import bearer_matches


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for a bearer METRICS_TOKEN or a client in METRICS_ALLOWED_IPS."""
    token = bearer_matches(request, settings.METRICS_TOKEN)
    if token is False:
        return HttpResponse("Invalid metrics token.\n", status=HTTPStatus.FORBIDDEN, content_type="text/plain")
    if token is None and not is_trusted(request.META.get("REMOTE_ADDR", ""), settings.METRICS_ALLOWED_IPS):
        response = HttpResponse(
            "Metrics need a bearer token.\n", status=HTTPStatus.UNAUTHORIZED, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(prometheus.exposition()), content_type=CONTENT_TYPE_LATEST)
