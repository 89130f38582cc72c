"""A webhook receiver on loopback: uvicorn serving a small ASGI app in a thread of its own, which
records every request it gets and answers as a test tells it to."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook

from crm_api.webhooks.listen import read_body


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, after the `standardwebhooks` package's own verifier accepted it."""
        return dict(Webhook(secret).verify(self.body, self.headers))


# Given a request, the status to answer with (and optional extra headers).
Responder = Callable[[Received], int | tuple[int, dict[str, str]]]


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    responder: Responder = lambda _: 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    reply: bytes | None = None  # the response body; default `{"status": <status>}`

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.payload for r in self.received]

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], within: float = 20
    ) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.received)):
                    return
            await asyncio.sleep(0.02)
        with self.lock:
            got = [r.payload.get("type") for r in self.received]
        raise AssertionError(f"the receiver did not get what was expected in time; got {got}")


def answering_after(seconds: float, status: int = 200) -> Responder:
    """A receiver that takes its time (blocking its own thread only)."""

    def respond(request: Received) -> int:
        time.sleep(seconds)
        return status

    return respond


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_receiver() -> tuple[Receiver, Callable[[], None]]:
    """A running receiver, and the function that stops it."""
    port = _free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hooks")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        request = Received(headers, body, time.time())
        with receiver.lock:
            receiver.received.append(request)
        answer = receiver.responder(request)
        status, extra = answer if isinstance(answer, tuple) else (answer, {})
        reply = receiver.reply or json.dumps({"status": status}).encode()
        response_headers = [(b"content-type", b"application/json")]
        response_headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": reply})

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return receiver, stop
