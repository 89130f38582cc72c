"""`crm-api serve` as operators run it: its log is JSON lines, uvicorn's own records included,
and each request's access line carries the X-Request-ID it answered with; headers too large
are the app's 431 problem, not the HTTP server's bare 400."""

import json
import time

import httpx

from tests.serving import LiveServer


def test_the_server_logs_json_lines_with_the_request_id(live_server: LiveServer) -> None:
    answered = httpx.get(
        f"{live_server.url}/v1/contacts", headers={**live_server.headers, "X-Request-ID": "ops-7"}
    )
    assert answered.status_code == 200
    assert answered.headers["x-request-id"] == "ops-7"
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in live_server.log_path.read_text().splitlines()]
        access = [line for line in lines if line.get("request_id") == "ops-7"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (line,) = access
    assert (line["logger"], line["operation"], line["status"]) == (
        "crm_api.access", "contacts_list", 200,
    )  # fmt: skip
    assert any(line["logger"].startswith("uvicorn") for line in lines)


def test_headers_too_large_are_a_431_problem_from_the_real_server(
    live_server: LiveServer,
) -> None:
    padded = {**live_server.headers, "X-Padding": "x" * (40 * 1024)}
    answered = httpx.get(f"{live_server.url}/v1/contacts", headers=padded)
    assert answered.status_code == 431
    assert answered.headers["content-type"] == "application/problem+json"
    assert answered.json()["status"] == 431
