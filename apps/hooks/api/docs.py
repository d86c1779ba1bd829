"""/api/v1/docs/: Swagger UI from ninja's own static files (no CDN), for staff only.

Who sees what, and why:
- the schema (/api/v1/schema/) is public: it describes the API's shape, never
  data, and the tools that consume it (client generators, schemathesis, API
  gateways) fetch it without credentials; every operation it lists still needs
  a token or a staff session;
- the docs page is for staff: it is a console that calls the API with the
  viewer's session (ninja puts the CSRF token in the page), and only a staff
  session may call the API, so anyone else would get a page on which every
  "Try it out" answers 401. A visitor who is not signed in goes to the admin's
  login, as for any admin page.
"""

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import NinjaAPI
from ninja.openapi.docs import Swagger

SETTINGS = {
    "persistAuthorization": True,
    # Swagger UI's standalone layout sends the schema's URL to validator.swagger.io for a badge (for any host
    # but localhost). ninja's BaseLayout has no badge; should the layout change, nothing may call out.
    "validatorUrl": None,
}


class StaffSwagger(Swagger):
    def __init__(self) -> None:
        super().__init__(settings=SETTINGS)

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return super().render_page(request, api, **kwargs)
