"""ASGI entry point: HTTP to Django; WebSockets through the Origin check and session auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
django_application = get_asgi_application()  # sets Django up before the imports below

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from apps.core.static import with_static_files  # noqa: E402
from apps.dashboard.connection import keep_raw_send  # noqa: E402
from apps.dashboard.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": with_static_files(django_application, ServeStaticASGI),
        "websocket": keep_raw_send(AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))),
    }
)
