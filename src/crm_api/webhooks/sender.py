"""One POST of one event to one endpoint, signed per Standard Webhooks, and what came of it."""

import json
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from crm_api.webhooks.models import Event, WebhookDelivery, WebhookEndpoint
from crm_api.webhooks.service import AttemptOutcome
from crm_api.webhooks.signing import signature_header
from crm_api.webhooks.urls import resolves_publicly

USER_AGENT = "crm-api-webhooks/1"


def envelope(event: Event) -> bytes:
    """The body: `{type, timestamp, data}` as Standard Webhooks recommends, plus the event's id,
    its sequence in the workspace and, for updates, the changes. The same bytes on every
    attempt."""
    payload = {
        "id": str(event.id),
        "type": event.type,
        "timestamp": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "sequence": event.sequence,
        "data": event.data,
    }
    if event.changes is not None:
        payload["changes"] = event.changes
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


async def address_problem(endpoint: WebhookEndpoint) -> str | None:
    """Why nothing may be posted to this endpoint now (its host resolves to a non-public
    address), or None. Checked once per batch and endpoint, when insecure URLs are not allowed."""
    url = urlsplit(endpoint.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    if await resolves_publicly(url.hostname or "", port):
        return None
    return "The URL's host resolves to a loopback, private or reserved address."


def refused(delivery: WebhookDelivery, error: str) -> AttemptOutcome:
    """An attempt that sent nothing."""
    return AttemptOutcome(
        workspace_id=delivery.workspace_id,
        endpoint_id=delivery.endpoint_id,
        delivery_id=delivery.id,
        attempted_at=datetime.now(UTC),
        duration_ms=0,
        error=error,
    )


async def send(
    client: httpx.AsyncClient,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    event: Event,
    *,
    timeout_seconds: float,
    body_limit: int,
) -> AttemptOutcome:
    attempted_at = datetime.now(UTC)
    started = time.perf_counter()

    def outcome(**fields: object) -> AttemptOutcome:
        return AttemptOutcome(
            workspace_id=delivery.workspace_id,
            endpoint_id=delivery.endpoint_id,
            delivery_id=delivery.id,
            attempted_at=attempted_at,
            duration_ms=round((time.perf_counter() - started) * 1000),
            **fields,  # type: ignore[arg-type]
        )

    body = envelope(event)
    message_id = str(event.id)
    timestamp = int(attempted_at.timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            signing_secrets(endpoint, attempted_at), message_id, timestamp, body
        ),
    }
    try:
        async with client.stream(
            "POST", endpoint.url, content=body, headers=headers, timeout=timeout_seconds
        ) as response:
            received = bytearray()
            async for chunk in response.aiter_bytes():  # decompressed, as a person reads it
                received += chunk
                if len(received) >= body_limit:
                    break
            text = bytes(received[:body_limit]).decode("utf-8", errors="replace")
            return outcome(
                response_status=response.status_code,
                response_body=text.replace("\x00", "") or None,
                retry_after=_retry_after(response),
            )
    except httpx.TimeoutException:
        return outcome(error=f"No response within {timeout_seconds:g} s.")
    except httpx.HTTPError as error:
        return outcome(error=f"{type(error).__name__}: {error}"[:1000] or type(error).__name__)
