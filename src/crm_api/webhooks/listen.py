"""`crm-api webhooks listen`: a receiver for trying webhooks out. It answers 204, checks each
signature when given the endpoint's secret, and prints one line per event."""

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import uvicorn

from crm_api.webhooks.signing import verify


def describe(headers: dict[str, str], body: bytes, secret: str | None, now: float) -> str:
    """One line: when, the signature check, the event type and sequence, the resource, and
    what changed."""
    try:
        event = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if secret is None:
        check = "signature not checked"
    else:
        check = "signature ok" if verify(secret, headers, body, now=now) else "BAD SIGNATURE"
    resource = event.get("data", {}).get("id", "-")
    changed = ", ".join(
        f"{field}: {json.dumps(change['old'])} -> {json.dumps(change['new'])}"
        for field, change in (event.get("changes") or {}).items()
    )
    at = datetime.fromtimestamp(now).strftime("%H:%M:%S")
    line = f"{at}  {check}  #{event.get('sequence', '-')} {event.get('type')} {resource}"
    return f"{line}  ({changed})" if changed else line


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI request."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


def receiver_app(secret: str | None, echo: Callable[[str], None]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        echo(describe(headers, body, secret, time.time()))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def listen(host: str, port: int, secret: str | None, echo: Callable[[str], None]) -> None:
    echo(f"listening on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(receiver_app(secret, echo), host=host, port=port, log_level="warning")
