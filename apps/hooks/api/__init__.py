"""/api/v1/: the portal's REST API, one router per resource, described by the OpenAPI schema at /api/v1/schema/.

Every write goes through the same service functions as the admin (audited,
broadcast after commit); every error is a problem document (problems.py).
"""

from ninja import NinjaAPI
from ninja.openapi.docs import Swagger

from apps.hooks.api import alerts, audit, backups, health, heartbeats, metrics, problems, silences
from apps.hooks.api.auth import StaffSession, TokenAuth
from apps.hooks.api.inputs import ApiParser

api = NinjaAPI(
    title="opsportal API",
    version="1",
    description=(
        "Alerts, silences, health, metrics, audit events, backups and heartbeats. "
        "Authenticate with `Authorization: Bearer <token>` (`manage.py api token create`) or a staff session. "
        "Errors are RFC 9457 problem details."
    ),
    auth=[TokenAuth(), StaffSession()],
    urls_namespace="api-v1",
    openapi_url="/schema/",
    docs_url="/docs/",
    docs=Swagger(settings={"persistAuthorization": True}),
    parser=ApiParser(),
)
problems.install(api)
api.add_router("/alerts/", alerts.router)
api.add_router("/silences/", silences.router)
api.add_router("/health/", health.router)
api.add_router("/metrics/", metrics.router)
api.add_router("/audit/", audit.router)
api.add_router("/backups/", backups.router)
api.add_router("/heartbeats/", heartbeats.router)
