"""Standard Webhooks (https://www.standardwebhooks.com) symmetric signatures, for both directions.

The webhooks the portal sends (apps.alerts.transports.webhook) and those it
receives (apps.hooks.signatures) share this: a secret is "whsec_" and the base64
of random bytes; a signature is "v1," and the base64 of HMAC-SHA256, keyed with
those bytes, over "{webhook-id}.{webhook-timestamp}.{raw body}".
"""

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 24  # the specification's minimum for new secrets: 192 bits
MIN_SECRET_BYTES = 16  # what a secret typed in by hand may have, at the least
VERSION = "v1"  # the symmetric scheme's signature identifier


def new_secret() -> str:
    """A fresh signing secret: whsec_ and SECRET_BYTES random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a whsec_ secret; ValueError (a message for people) if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f'the secret does not start with "{SECRET_PREFIX}"')
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f'the secret is not "{SECRET_PREFIX}" followed by base64') from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret is shorter than {MIN_SECRET_BYTES} bytes")
    return key


def digest(key: bytes, message_id: str, timestamp: int, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of one delivery: what a v1 signature carries in base64."""
    return hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value for one key: "v1,<base64>"."""
    return f"{VERSION},{base64.b64encode(digest(key, message_id, timestamp, body)).decode()}"
