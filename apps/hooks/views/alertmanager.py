"""POST /hooks/alertmanager/<name>/: one Alertmanager webhook notification, stored before it is answered."""

from http import HTTPStatus

from django.http import HttpRequest, JsonResponse

from apps.hooks import alertmanager
from apps.hooks.inbound import HookRejectedError, body, hook


@hook("alertmanager")
def receive(request: HttpRequest, name: str) -> JsonResponse:
    """200 with what changed ({"fired", "resolved", "duplicates", "stale"}); 4xx refused, 503 to retry later."""
    if request.method != "POST":
        raise HookRejectedError(
            HTTPStatus.METHOD_NOT_ALLOWED, "method", "Alertmanager POSTs here.", headers={"Allow": "POST"}
        )
    receiver = alertmanager.receiver_authenticate(name, request.headers.get("Authorization", ""))
    notification = alertmanager.notification_parse(body(request))
    outcome = alertmanager.notification_receive(receiver=receiver, notification=notification)
    return JsonResponse(outcome.as_dict())
