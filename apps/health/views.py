"""The health endpoints: /healthz (liveness), /readyz (readiness), /health/ (every check, for staff or a token).

/healthz and /readyz are for load balancers and Kubernetes: no authentication,
and apps.health.middleware.ProbeMiddleware answers them before the host check,
the HTTPS redirect, the session and the request log. /health/ goes through the
whole stack: a bearer HEALTH_TOKEN or a staff session with the permission to
view check states; it serves the stored results of the scheduled run, so that
polling it never runs a check (?fresh=1 does, on purpose).
"""

from http import HTTPStatus

import structlog
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_safe

from apps.core.tokens import bearer_matches
from apps.health import pages, services

logger = structlog.get_logger(__name__)

LIVE = b'{"status": "ok"}'


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: this process answers HTTP. Touches no database, cache, session or other dependency."""
    return _uncached(HttpResponse(LIVE, content_type="application/json"))


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database (and with REDIS_URL, Redis and the broker) answer; 503 naming what did not.

    Unauthenticated, so the body names the failed dependencies and says only
    whether each timed out or was unreachable; the full reason goes to the log.
    Answers within HEALTH_READY_TIMEOUT_SECONDS even when a dependency hangs.
    """
    ready, failures = services.readiness(settings.HEALTH_READY_TIMEOUT_SECONDS)
    if ready:
        return _uncached(JsonResponse({"status": "ready"}))
    logger.warning("health_not_ready", failed=failures)
    failed = {name: "timed out" if why.startswith("timed out") else "unreachable" for name, why in failures.items()}
    return _uncached(JsonResponse({"status": "unavailable", "failed": failed}, status=HTTPStatus.SERVICE_UNAVAILABLE))


@require_safe
def health(request: HttpRequest) -> HttpResponse:
    """Every check's latest stored result and the overall status, as JSON, or as a page for a staff browser.

    ?fresh=1 runs the checks now instead (nothing is stored). 401 without
    credentials (a browser is sent to the login page), 403 for a wrong token or
    a user who may not view check states, 400 for a malformed ?fresh.
    """
    html = request.get_preferred_type(["application/json", "text/html"]) == "text/html"
    response = _refusal(request, html)
    if response is None:
        response = _answer(request, html)
    patch_vary_headers(response, ["Accept", "Authorization", "Cookie"])
    return _uncached(response)


def _answer(request: HttpRequest, html: bool) -> HttpResponse:
    try:
        fresh = pages.wants_fresh(request)
    except pages.BadFreshError as error:
        return _error(str(error), HTTPStatus.BAD_REQUEST)
    found = pages.report(fresh=fresh)
    if html and request.user.is_authenticated:
        return pages.overview_page(request, found)
    return JsonResponse(found)


def _refusal(request: HttpRequest, html: bool) -> HttpResponse | None:
    """None when the request may see the checks; otherwise the answer that refuses it."""
    token = bearer_matches(request, settings.HEALTH_TOKEN)
    if token is not None:
        return None if token else _error("Invalid health token.", HTTPStatus.FORBIDDEN)
    user = request.user
    if not user.is_authenticated:
        if html:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        response = _error("Log in as staff, or send Authorization: Bearer HEALTH_TOKEN.", HTTPStatus.UNAUTHORIZED)
        response["WWW-Authenticate"] = 'Bearer realm="health"'
        return response
    if not (user.is_active and user.is_staff and user.has_perm(pages.VIEW_PERMISSION)):
        return _error("You may not view the health checks.", HTTPStatus.FORBIDDEN)
    return None


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _uncached(response: HttpResponse) -> HttpResponse:
    patch_cache_control(response, no_store=True)
    return response
