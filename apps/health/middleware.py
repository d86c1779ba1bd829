"""Load balancer and Kubernetes probes answered first, before the rest of the middleware.

/healthz and /readyz come from load balancers and the kubelet, which send the
pod's or instance's IP address as Host and probe over plain HTTP inside the
network. Answered here, at the top of MIDDLEWARE, they skip CommonMiddleware's
ALLOWED_HOSTS check and SecurityMiddleware's HTTPS redirect (the practice of
django-lb-health-check), and also the session, authentication, request log and
request metrics: a probe loads no session and runs no query (readiness's own
probes aside). Nothing in their answers depends on the Host header. Every other
path, /health/ included, goes through the whole stack.

Sync-only, like the portal's other middleware, so the chain stays in one thread.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.health import views

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": views.healthz, "/readyz": views.readyz}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        return probe(request) if probe is not None else self.get_response(request)
