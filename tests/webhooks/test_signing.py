"""Our signatures against the `standardwebhooks` package, both ways."""

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from crm_api.webhooks.listen import describe
from crm_api.webhooks.signing import new_secret, sign, signature_header, verify

BODY = json.dumps({"type": "contact.created", "sequence": 7, "data": {"id": "c1"}}).encode()


def headers(message_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_the_library_verifies_what_we_sign() -> None:
    secret = new_secret()
    now = int(time.time())
    signed = headers("msg_1", now, sign(secret, "msg_1", now, BODY))
    assert Webhook(secret).verify(BODY, signed) == json.loads(BODY)


def test_we_sign_exactly_as_the_library_does() -> None:
    secret = new_secret()
    moment = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    expected = Webhook(secret).sign("msg_2", moment, BODY.decode())
    assert sign(secret, "msg_2", int(moment.timestamp()), BODY) == expected


def test_two_secrets_sign_side_by_side_and_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    now = int(time.time())
    both = headers("msg_3", now, signature_header([new, old], "msg_3", now, BODY))
    for secret in (old, new):
        Webhook(secret).verify(BODY, both)
        assert verify(secret, both, BODY, now=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, both)


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "old timestamp", "other secret", "no signature", "bad timestamp"],
)
def test_our_verifier_refuses_what_it_should(tamper: str) -> None:
    secret = new_secret()
    now = int(time.time())
    body = BODY
    signed = headers("msg_4", now, sign(secret, "msg_4", now, BODY))
    if tamper == "body":
        body = BODY.replace(b"c1", b"c2")
    elif tamper == "id":
        signed["webhook-id"] = "msg_5"
    elif tamper == "old timestamp":
        old = now - 600
        signed = headers("msg_4", old, sign(secret, "msg_4", old, BODY))
    elif tamper == "other secret":
        signed["webhook-signature"] = sign(new_secret(), "msg_4", now, BODY)
    elif tamper == "no signature":
        del signed["webhook-signature"]
    else:
        signed["webhook-timestamp"] = "soon"
    assert not verify(secret, signed, body, now=now)


def test_listen_prints_the_event_and_the_signature_check() -> None:
    secret = new_secret()
    now = int(time.time())
    body = json.dumps(
        {
            "type": "contact.updated",
            "sequence": 12,
            "data": {"id": "c9"},
            "changes": {"lifecycle_stage": {"old": "lead", "new": "customer"}},
        }
    ).encode()
    signed = headers("msg_6", now, sign(secret, "msg_6", now, body))
    line = describe(signed, body, secret, now)
    assert "signature ok  #12 contact.updated c9" in line
    assert 'lifecycle_stage: "lead" -> "customer"' in line
    assert "BAD SIGNATURE" in describe(signed, body, new_secret(), now)
    assert "signature not checked" in describe(signed, body, None, now)
    assert describe(signed, b"<html>", secret, now).startswith("not JSON")
