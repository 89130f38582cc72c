"""`crm-api serve` in a subprocess on a free loopback port, as operators run it, with a workspace
of its own and its log in a file."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "crm_api"]


@dataclass(frozen=True)
class LiveServer:
    url: str
    key: str
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(database_url: str, log_path: Path, **settings: str) -> Iterator[LiveServer]:
    """The server on `database_url` (migrated), with `settings` as CRM_* environment variables."""
    env = {**os.environ, "CRM_DATABASE_URL": database_url}
    env.update({f"CRM_{name.upper()}": value for name, value in settings.items()})
    created = subprocess.run(
        [*CLI, "workspace", "create", "Served", "--country", "US"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    port = _free_port()
    # The server's log goes to a file: a pipe nobody reads would block it once full.
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log_path.read_text()}")
                time.sleep(0.2)
            yield LiveServer(url, key, log_path)
        finally:
            server.terminate()
            server.wait(timeout=30)
