"""ASGI middleware: request body size limit (413 problem, chunked bodies included)."""

import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_api.core.errors import PROBLEM_MEDIA_TYPE, problem_body


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, exceptions: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        # Paths that take larger bodies (file uploads), with their own limit.
        self.exceptions = dict(exceptions or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.exceptions.get(scope["path"], self.default_max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._send_problem(
                scope, send, 400, "bad-request", "Bad request", "Invalid Content-Length."
            )
            return
        if declared is not None and int(declared) > max_bytes:
            await self._send_too_large(scope, send, max_bytes)
            return
        received = 0
        overflowed = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, overflowed
            if overflowed:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # The app sees a cut-off body and answers with some error, which
                    # guarded_send replaces by the 413 that explains it.
                    overflowed = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if overflowed:
                if not replaced and message["type"] == "http.response.start":
                    replaced = True
                    await self._send_too_large(scope, send, max_bytes)
                return
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _send_too_large(self, scope: Scope, send: Send, max_bytes: int) -> None:
        detail = f"Request bodies are limited to {max_bytes} bytes."
        await self._send_problem(scope, send, 413, "payload-too-large", "Payload too large", detail)

    async def _send_problem(
        self, scope: Scope, send: Send, status: int, slug: str, title: str, detail: str
    ) -> None:
        payload = json.dumps(problem_body(status, slug, title, detail, scope["path"])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
