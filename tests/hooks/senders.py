"""A Standard Webhooks sender for the tests: signs with the independent `standardwebhooks` library."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import standardwebhooks
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families


def body_of(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def signed_headers(secrets: str | list[str], body: bytes, *, message_id: str = "", at: datetime | None = None) -> dict:
    """webhook-id, webhook-timestamp and webhook-signature (one v1 entry per secret) for `body`."""
    at = at or timezone.now()
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    signatures = [
        standardwebhooks.Webhook(secret).sign(message_id, at.astimezone(UTC), body.decode())
        for secret in ([secrets] if isinstance(secrets, str) else secrets)
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def send(client: Client, name: str, body: bytes, headers: dict) -> Any:
    return client.post(f"/hooks/events/{name}/", data=body, content_type="application/json", headers=headers)


def deliver(client: Client, endpoint: Any, event: Any, **signing: Any) -> Any:
    """Sign `event` with the endpoint's secret (or `secrets=`) and POST it."""
    body = body_of(event)
    secrets = signing.pop("secrets", endpoint.secret)
    return send(client, endpoint.name, body, signed_headers(secrets, body, **signing))


def rejected(client: Client, reason: str, hook: str = "events") -> float:
    """opsportal_hooks_rejected_total{hook, reason} as /metrics shows it now."""
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name == "opsportal_hooks_rejected_total" and sample.labels == {"hook": hook, "reason": reason}:
                return sample.value
    raise AssertionError(f"no opsportal_hooks_rejected_total sample for {hook}/{reason}")
