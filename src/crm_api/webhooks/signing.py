"""Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(secret, "id.timestamp.body"))."""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """32 random bytes, base64, with the `whsec_` prefix (the spec allows 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per live secret, so a receiver that still holds the old
    secret during a rotation verifies too."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_)


def verify(
    secret: str, headers: dict[str, str], body: bytes, *, now: float, tolerance: float = 300
) -> bool:
    """Whether one of the request's signatures is ours for `secret`, on a timestamp within
    `tolerance` seconds of `now` (what a receiver checks; `crm-api webhooks listen` uses it)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
