"""Verifying a Standard Webhooks delivery to /hooks/events/<name>/, on the raw body, before it is parsed.

A delivery carries webhook-id, webhook-timestamp (unix seconds) and
webhook-signature: space-separated "<version>,<base64>" entries, so that a
sender rotating its secret can sign with both. It is accepted when its
timestamp is within HOOKS_TIMESTAMP_TOLERANCE_SECONDS of now, either way, and a
v1 entry equals the HMAC under one of the endpoint's active secrets (`secret`,
and `previous_secret` until `previous_secret_expires_at`).

Every refusal is the same 401 for the caller, whose body is never echoed; the
cause (malformed header, stale timestamp, no matching signature) goes to the log
for the operator, without the headers' values.
"""

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus

import structlog
from django.conf import settings

from apps.core import standard_webhooks
from apps.hooks.inbound import HookRejectedError
from apps.hooks.models import WebhookEndpoint

logger = structlog.get_logger(__name__)

# Visible ASCII without ".": the id is the first part of the dot-separated signed content, and the
# specification forbids a "." in it so that no other split of the same bytes verifies.
MESSAGE_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,200}")  # 200: WebhookMessage.message_id
TIMESTAMP = re.compile(r"[0-9]{1,15}")
SIGNATURE_HEADER_MAX = 4096  # bytes worth of entries: a few secrets' signatures, never thousands of HMACs
SIGNATURE_ENTRIES_MAX = 10
DIGEST_BYTES = 32  # HMAC-SHA256


class SignatureError(HookRejectedError):
    """The delivery is refused; `cause` is for the log, never for the caller."""

    def __init__(self, cause: str) -> None:
        super().__init__(HTTPStatus.UNAUTHORIZED, "unauthorized", "The webhook signature is missing or invalid.")
        self.cause = cause


@dataclass(frozen=True)
class Delivery:
    """What the verified headers say: the sender's id for the event (its idempotency key) and when it was sent."""

    message_id: str
    sent_at: datetime


def verify(endpoint: WebhookEndpoint, headers: Mapping[str, str], body: bytes, *, now: datetime) -> Delivery:
    """The delivery if `body` is signed by one of the endpoint's active secrets, recently; else SignatureError."""
    try:
        message_id, timestamp, signatures = _read_headers(headers)
        if abs(now.timestamp() - timestamp) > settings.HOOKS_TIMESTAMP_TOLERANCE_SECONDS:
            raise SignatureError("timestamp_outside_tolerance")
        matched = False
        for key in active_keys(endpoint, now):
            expected = standard_webhooks.digest(key, message_id, timestamp, body)
            for signature in signatures:  # every pair, without stopping at a match: constant time
                matched |= hmac.compare_digest(expected, signature)
        if not matched:
            raise SignatureError("no_matching_signature")
    except SignatureError as error:
        logger.info("webhook_signature_refused", endpoint=endpoint.name, cause=error.cause)
        raise
    return Delivery(message_id=message_id, sent_at=datetime.fromtimestamp(timestamp, tz=UTC))


def active_keys(endpoint: WebhookEndpoint, now: datetime) -> list[bytes]:
    """The keys a delivery may be signed with now: the secret, and the previous one until it expires."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        secrets.append(endpoint.previous_secret)
    keys = []
    for secret in secrets:
        try:
            keys.append(standard_webhooks.secret_key(secret))
        except ValueError as error:  # only if written around the admin: it verifies nothing
            logger.error("webhook_endpoint_secret_unusable", endpoint=endpoint.name, error=str(error))
    return keys


def _read_headers(headers: Mapping[str, str]) -> tuple[str, int, list[bytes]]:
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signature = headers.get("webhook-signature", "")
    if not (message_id and timestamp and signature):
        raise SignatureError("headers_missing")
    if not MESSAGE_ID.fullmatch(message_id):
        raise SignatureError("malformed_id")
    if not TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("malformed_timestamp")
    return message_id, int(timestamp), _read_signatures(signature)


def _read_signatures(header: str) -> list[bytes]:
    """The v1 digests; entries of other versions (v1a: asymmetric) are skipped, anything malformed refused."""
    entries = header.split(" ")
    if len(header) > SIGNATURE_HEADER_MAX or len(entries) > SIGNATURE_ENTRIES_MAX:
        raise SignatureError("malformed_signature")
    digests = []
    for entry in entries:
        version, comma, value = entry.partition(",")
        if not comma or not version or not value:
            raise SignatureError("malformed_signature")
        if version == standard_webhooks.VERSION:
            digests.append(_decode(value))
    if not digests:
        raise SignatureError("no_v1_signature")
    return digests


def _decode(value: str) -> bytes:
    # Canonical base64 only: the last character of a 32-byte digest has two unused bits, and a
    # lenient decoder would take four spellings of one signature as the same.
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed_signature") from None
    if len(digest) != DIGEST_BYTES or base64.b64encode(digest).decode() != value:
        raise SignatureError("malformed_signature")
    return digest
