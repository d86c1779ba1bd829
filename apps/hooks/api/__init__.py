"""/api/v1/: the portal's REST API, one router per resource, described by the OpenAPI schema at /api/v1/schema/.

Every write goes through the same service functions as the admin (audited,
broadcast after commit); every error is a problem document (problems.py).
"""

from apps.hooks.api import alerts, audit, backups, health, heartbeats, metrics, problems, silences
from apps.hooks.api.auth import StaffSession, TokenAuth
from apps.hooks.api.docs import StaffSwagger
from apps.hooks.api.parser import ApiParser
from apps.hooks.api.renderer import ORJSONRenderer

api = problems.ProblemAPI(
    title="opsportal API",
    version="1",
    description=(
        "Alerts, silences, health, metrics, audit events, backups and heartbeats. "
        "Authenticate with `Authorization: Bearer <token>` (`manage.py api token create`) or a staff session. "
        "Errors are RFC 9457 problem details (application/problem+json). "
        "No text may contain a NUL character (U+0000)."
    ),
    auth=[TokenAuth(), StaffSession()],
    parser=ApiParser(),
    renderer=ORJSONRenderer(),
    urls_namespace="api-v1",
    openapi_url="/schema/",
    docs_url="/docs/",
    docs=StaffSwagger(),  # staff only; the schema stays public (docs.py says why)
)
problems.install(api)
api.add_router("/alerts/", alerts.router)
api.add_router("/silences/", silences.router)
api.add_router("/health/", health.router)
api.add_router("/metrics/", metrics.router)
api.add_router("/audit/", audit.router)
api.add_router("/backups/", backups.router)
api.add_router("/heartbeats/", heartbeats.router)
