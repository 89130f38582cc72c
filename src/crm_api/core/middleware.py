"""ASGI middleware: the request's context (id, access log, metrics) and the request size
limits (431 for the headers, 413 for the body, chunked bodies included)."""

import json
import logging
import re
import time
from collections.abc import Mapping

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_api.core.db import new_id
from crm_api.core.errors import PROBLEM_MEDIA_TYPE, handle_unexpected, problem_body
from crm_api.core.telemetry import observe_request

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own request id is kept when it is one of these (a proxy's, a trace's); else ours.
CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("crm_api.access")


class RequestContext:
    """Gives every request an id (the caller's X-Request-ID when well-formed, else a new
    UUIDv7), returned as X-Request-ID and bound to every log record made while it runs; then
    writes its access log line and counts it in the metrics, by operation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = given if given and CALLER_REQUEST_ID.fullmatch(given) else str(new_id())
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        scope.setdefault("state", {})["request_id"] = request_id  # for the audit log
        status: int | None = None
        started = time.perf_counter()

        async def identified_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append(REQUEST_ID_HEADER, request_id)
                # Where the caller's API key stands in its rate limit (core/rate_limits.py),
                # unless the answer says it already (a 429).
                for name, value in scope.get("state", {}).get("rate_limit_headers", {}).items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        try:
            await self.app(scope, receive, identified_send)
        except Exception as error:
            if status is not None:
                raise
            # Answered here rather than by Starlette's outermost handler, so the 500 and its
            # log record carry the request id too.
            response = await handle_unexpected(Request(scope), error)
            await response(scope, receive, identified_send)
        finally:
            status = status or 500
            seconds = time.perf_counter() - started
            route = scope.get("route")
            operation = getattr(route, "name", None) or "unmatched"
            observe_request(operation, scope["method"], status, seconds)
            principal = scope.get("state", {}).get("principal")
            client = scope.get("client")
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "operation": operation,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None,
                    "workspace_id": str(principal.workspace_id) if principal else None,
                    "api_key_id": str(principal.api_key_id) if principal else None,
                },
            )
            structlog.contextvars.reset_contextvars(**bound)


class RequestSizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        exceptions: Mapping[str, int] | None = None,
        max_header_bytes: int = 16 * 1024,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        # Paths that take larger bodies (file uploads), with their own limit.
        self.exceptions = dict(exceptions or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            detail = f"Request headers are limited to {self.max_header_bytes} bytes in all."
            await self._send_problem(
                scope, send, 431, "headers-too-large", "Request header fields too large", detail
            )
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
