"""POST /hooks/events/<name>/: a Standard Webhooks sender's deliveries (apps.hooks.events says what they do).

Order matters: the signature is checked on the raw bytes before anything reads
them as JSON, and nothing is written for a delivery that fails it.
"""

from http import HTTPStatus

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from apps.hooks import events, inbound, signatures
from apps.hooks.inbound import HookRejectedError
from apps.hooks.models import WebhookEndpoint


@inbound.hook("events")
def receive(request: HttpRequest, name: str) -> JsonResponse:
    if request.method != "POST":
        raise HookRejectedError(HTTPStatus.METHOD_NOT_ALLOWED, "method", "Use POST.", headers={"Allow": "POST"})
    endpoint = WebhookEndpoint.objects.filter(name=name, enabled=True).first()
    if endpoint is None:
        raise HookRejectedError(HTTPStatus.NOT_FOUND, "not_found", "No such endpoint, or it is disabled.")
    data = inbound.body(request)
    delivery = signatures.verify(endpoint, request.headers, data, now=timezone.now())
    payload = inbound.parse_json(data)
    try:
        received = events.event_receive(
            endpoint=endpoint, message_id=delivery.message_id, sent_at=delivery.sent_at, payload=payload
        )
    except events.EventError as error:
        raise HookRejectedError(HTTPStatus.BAD_REQUEST, "bad_request", str(error)) from None
    message = received.message
    return JsonResponse({"id": message.message_id, "outcome": message.outcome, "duplicate": received.duplicate})
