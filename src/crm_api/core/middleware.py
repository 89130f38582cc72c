"""ASGI middleware: request body size limit (413 problem, even for chunked bodies)."""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_api.core.errors import PROBLEM_MEDIA_TYPE, PayloadTooLarge, problem_body


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, send, 413 if declared.isdigit() else 400)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self._detail())
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"Request bodies are limited to {self.max_bytes} bytes."

    async def _reject(self, scope: Scope, send: Send, status: int) -> None:
        if status == 413:
            body = problem_body(
                413, "payload-too-large", "Payload too large", self._detail(), scope["path"]
            )
        else:
            body = problem_body(
                400, "bad-request", "Bad request", "Invalid Content-Length.", scope["path"]
            )
        payload = json.dumps(body).encode()
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
