"""Standard Webhooks verification at /hooks/events/<name>/: signed by the independent `standardwebhooks`
library, refused with the same 401 for any flaw, before the body is parsed or anything is written."""

import logging
import random
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.utils import timezone

from apps.alerts.models import Alert
from apps.core.standard_webhooks import new_secret
from apps.hooks import events
from apps.hooks.models import WebhookMessage
from tests.hooks.senders import body_of, deliver, rejected, send, signed_headers

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIRE = {"fire": ["incident.opened"], "summary": "data.title"}
EVENT = {"type": "incident.opened", "data": {"id": "db-1", "title": "Database down", "severity": "critical"}}


def flipped(text: str, bit: int) -> str:
    """`text` with one bit of one character flipped (characters stay below 256, as header values are)."""
    index, mask = divmod(bit, 8)
    return text[:index] + chr(ord(text[index]) ^ (1 << mask)) + text[index + 1 :]


def test_a_delivery_signed_by_the_library_is_accepted(client, make_endpoint):
    endpoint = make_endpoint(mapping=FIRE)
    response = deliver(client, endpoint, EVENT, message_id="msg_1")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"id": "msg_1", "outcome": "fired", "duplicate": False}


def test_a_thousand_single_bit_flips_are_all_refused_and_write_nothing(client, make_endpoint):
    endpoint = make_endpoint(mapping=FIRE)
    body = body_of({**EVENT, "data": {**EVENT["data"], "note": "x" * 150}})
    headers = signed_headers(endpoint.secret, body, message_id="msg_flips")
    timestamp, signature = headers["webhook-timestamp"], headers["webhook-signature"]
    # Every bit of the timestamp and signature headers, the rest spread over the body.
    header_bits = len(timestamp) * 8 + len(signature) * 8
    body_bits = random.Random(9).sample(range(len(body) * 8), 1000 - header_bits)
    responses = []
    logging.disable(logging.CRITICAL)  # 4,000 log lines would take a third of the time; logging is tested below
    try:
        for bit in range(len(timestamp) * 8):
            changed = {**headers, "webhook-timestamp": flipped(timestamp, bit)}
            responses.append(send(client, endpoint.name, body, changed))
        for bit in range(len(signature) * 8):
            changed = {**headers, "webhook-signature": flipped(signature, bit)}
            responses.append(send(client, endpoint.name, body, changed))
        for bit in body_bits:
            index, mask = divmod(bit, 8)
            changed = body[:index] + bytes([body[index] ^ (1 << mask)]) + body[index + 1 :]
            responses.append(send(client, endpoint.name, changed, headers))
    finally:
        logging.disable(logging.NOTSET)

    assert len(responses) == 1000
    assert {response.status_code for response in responses} == {HTTPStatus.UNAUTHORIZED}
    assert not WebhookMessage.objects.exists() and not Alert.objects.exists()
    # The untouched delivery is the one that passes.
    assert send(client, endpoint.name, body, headers).status_code == HTTPStatus.OK
    assert WebhookMessage.objects.count() == 1 and Alert.objects.count() == 1


@pytest.mark.parametrize(
    ("skew", "status"),
    [(-301, HTTPStatus.UNAUTHORIZED), (-299, HTTPStatus.OK), (299, HTTPStatus.OK), (301, HTTPStatus.UNAUTHORIZED)],
)
def test_the_timestamp_may_be_five_minutes_off_either_way(client, make_endpoint, skew, status):
    endpoint = make_endpoint()
    with time_machine.travel(NOW, tick=False):
        response = deliver(client, endpoint, EVENT, at=NOW + timedelta(seconds=skew))
    assert response.status_code == status
    assert WebhookMessage.objects.count() == (status == HTTPStatus.OK)


def test_a_timestamp_years_ahead_is_refused(client, make_endpoint):
    endpoint = make_endpoint()
    response = deliver(client, endpoint, EVENT, at=timezone.now() + timedelta(days=3650))
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_the_tolerance_is_a_setting(client, make_endpoint, settings):
    settings.HOOKS_TIMESTAMP_TOLERANCE_SECONDS = 30
    endpoint = make_endpoint()
    with time_machine.travel(NOW, tick=False):
        assert deliver(client, endpoint, EVENT, at=NOW - timedelta(seconds=31)).status_code == HTTPStatus.UNAUTHORIZED
        assert deliver(client, endpoint, EVENT, at=NOW - timedelta(seconds=29)).status_code == HTTPStatus.OK


def canonical_spellings(signature: str) -> list[str]:
    """The same digest with the unused low bits of its last base64 character set: only the first is canonical."""
    value = signature.removeprefix("v1,")
    last = value[-2]  # value[-1] is the padding "="
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    base = alphabet.index(last) & ~0b11
    return [f"v1,{value[:-2]}{alphabet[base + extra]}=" for extra in range(4)]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-id", None),
        ("webhook-timestamp", None),
        ("webhook-signature", None),
        ("webhook-id", ""),
        ("webhook-id", "msg.with.dots"),
        ("webhook-id", "x" * 201),
        ("webhook-id", "msg 1"),
        ("webhook-timestamp", "1772366400.0"),
        ("webhook-timestamp", "+1772366400"),
        ("webhook-timestamp", "1e9"),
        ("webhook-timestamp", "9" * 40),
        ("webhook-signature", "v1,"),
        ("webhook-signature", "v1"),
        ("webhook-signature", ",abc"),
        ("webhook-signature", "v1,not base64!"),
        ("webhook-signature", "v1,c2hvcnQ="),  # valid base64, but not 32 bytes
        ("webhook-signature", "v1a," + "A" * 86 + "=="),  # only an asymmetric signature: not for us
        ("webhook-signature", "  "),
    ],
)
def test_a_malformed_or_missing_header_is_refused(client, make_endpoint, header, value):
    endpoint = make_endpoint()
    body = body_of(EVENT)
    headers = signed_headers(endpoint.secret, body)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    assert send(client, endpoint.name, body, headers).status_code == HTTPStatus.UNAUTHORIZED
    assert not WebhookMessage.objects.exists()


def test_only_the_canonical_base64_of_a_signature_is_accepted(client, make_endpoint):
    endpoint = make_endpoint()
    body = body_of(EVENT)
    headers = signed_headers(endpoint.secret, body, message_id="msg_b64")
    spellings = canonical_spellings(headers["webhook-signature"])
    assert headers["webhook-signature"] in spellings
    for spelling in spellings:
        response = send(client, endpoint.name, body, {**headers, "webhook-signature": spelling})
        expected = HTTPStatus.OK if spelling == headers["webhook-signature"] else HTTPStatus.UNAUTHORIZED
        assert response.status_code == expected


def test_a_signature_among_others_is_found_and_unknown_versions_are_skipped(client, make_endpoint):
    endpoint = make_endpoint()
    body = body_of(EVENT)
    headers = signed_headers([new_secret(), endpoint.secret], body)
    headers["webhook-signature"] = "v1a,c2lnbmVkIGFzeW1tZXRyaWNhbGx5 " + headers["webhook-signature"]
    assert send(client, endpoint.name, body, headers).status_code == HTTPStatus.OK


def test_a_refusal_is_generic_echoes_nothing_and_logs_its_cause_without_secrets(client, make_endpoint, log_lines):
    endpoint = make_endpoint()
    body = body_of({**EVENT, "marker": "do-not-echo-4711"})
    headers = signed_headers(new_secret(), body)  # another secret
    response = send(client, endpoint.name, body, headers)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"error": "The webhook signature is missing or invalid."}
    logged = "\n".join(str(line) for line in log_lines())
    assert "no_matching_signature" in logged and "hook_rejected" in logged
    for secret_or_body in ("do-not-echo-4711", headers["webhook-signature"][3:], endpoint.secret[6:]):
        assert secret_or_body not in logged and secret_or_body not in response.content.decode()


def test_after_a_rotation_both_secrets_verify_until_the_old_one_expires(client, make_endpoint):
    endpoint = make_endpoint()
    old = endpoint.secret
    with time_machine.travel(NOW, tick=False):
        new = events.endpoint_rotate_secret(endpoint, keep_previous_for=timedelta(hours=24))
    endpoint.refresh_from_db()
    assert new != old and endpoint.secret == new and endpoint.previous_secret == old

    for hours, old_status in [(0, HTTPStatus.OK), (23.9, HTTPStatus.OK), (24, HTTPStatus.UNAUTHORIZED)]:
        at = NOW + timedelta(hours=hours)
        with time_machine.travel(at, tick=False):
            assert deliver(client, endpoint, EVENT, secrets=old, at=at).status_code == old_status
            assert deliver(client, endpoint, EVENT, secrets=new, at=at).status_code == HTTPStatus.OK


def test_a_rotation_without_overlap_stops_the_old_secret_at_once(client, make_endpoint):
    endpoint = make_endpoint()
    old = endpoint.secret
    new = events.endpoint_rotate_secret(endpoint, keep_previous_for=timedelta(0))
    endpoint.refresh_from_db()
    assert deliver(client, endpoint, EVENT, secrets=old).status_code == HTTPStatus.UNAUTHORIZED
    assert deliver(client, endpoint, EVENT, secrets=new).status_code == HTTPStatus.OK


def test_a_second_rotation_retires_the_secret_kept_by_the_first(client, make_endpoint):
    endpoint = make_endpoint()
    first = endpoint.secret
    second = events.endpoint_rotate_secret(endpoint, keep_previous_for=timedelta(hours=1))
    third = events.endpoint_rotate_secret(endpoint, keep_previous_for=timedelta(hours=1))
    endpoint.refresh_from_db()
    assert deliver(client, endpoint, EVENT, secrets=first).status_code == HTTPStatus.UNAUTHORIZED
    assert deliver(client, endpoint, EVENT, secrets=second).status_code == HTTPStatus.OK
    assert deliver(client, endpoint, EVENT, secrets=third).status_code == HTTPStatus.OK


@pytest.mark.parametrize("days", [-1, 31])
def test_a_rotation_overlap_outside_zero_to_thirty_days_is_refused(make_endpoint, days):
    endpoint = make_endpoint()
    with pytest.raises(events.EventError, match="0 to 30 days"):
        events.endpoint_rotate_secret(endpoint, keep_previous_for=timedelta(days=days))
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == ""


def test_refusals_are_counted_on_metrics(client, make_endpoint):
    endpoint = make_endpoint()
    before = rejected(client, "unauthorized")
    body = body_of(EVENT)
    for _ in range(3):
        send(client, endpoint.name, body, signed_headers(new_secret(), body))
    assert rejected(client, "unauthorized") == before + 3
