"""The `crm-api` command."""

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from crm_api import models  # noqa: F401  (every table and session hook, for each command)
from crm_api.core.database_url import resolve_database_url
from crm_api.core.db import create_engine, create_sessionmaker, transaction
from crm_api.imports.schemas import ImportErrorListParams, ImportFormat, ImportResource
from crm_api.settings import get_settings

app = typer.Typer(
    help="crm-api: a headless CRM backend.", no_args_is_help=True, pretty_exceptions_enable=False
)
workspace_app = typer.Typer(help="Workspaces (tenants).", no_args_is_help=True)
openapi_app = typer.Typer(help="The published OpenAPI document.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhooks.", no_args_is_help=True)
metrics_app = typer.Typer(help="Customer metrics.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
app.add_typer(openapi_app, name="openapi")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(metrics_app, name="metrics")

OPENAPI_PATH = Path("openapi/openapi.json")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    with_worker: Annotated[
        bool, typer.Option(help="Also deliver webhooks from the server (development).")
    ] = False,
) -> None:
    """Run the API server."""
    from crm_api.app import create_served_app

    if with_worker:
        os.environ["CRM_RUN_DISPATCHER"] = "true"
        get_settings.cache_clear()
    # Each server process builds its own app (and engine, and logging) from the same settings.
    os.environ["CRM_DATABASE_URL"] = resolve_database_url(get_settings())
    get_settings.cache_clear()
    # log_config None: uvicorn leaves logging to the app (JSON lines, core/logs.py).
    uvicorn.run(
        create_served_app() if workers == 1 else "crm_api.app:create_served_app",
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_config=None,
        # Room beyond the app's own header limit, so that it answers with a 431 problem.
        h11_max_incomplete_event_size=4 * get_settings().max_header_bytes,
    )


@app.command()
def worker(
    batch_size: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Deliveries claimed at a time.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=256, help="Endpoints served at once.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve this worker's Prometheus metrics here."),
    ] = None,
) -> None:
    """Deliver webhooks, apply imports and announce SLA breaches until stopped (SIGTERM). Run as
    many as you like: they share the work without doing anything twice."""
    from crm_api.tasks import periodic_tasks
    from crm_api.webhooks.dispatcher import run_worker

    settings = get_settings()
    overrides = {"worker_batch_size": batch_size, "worker_concurrency": concurrency}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    asyncio.run(run_worker(resolve_database_url(settings), settings, periodic_tasks(settings)))


@webhooks_app.command("listen")
def webhooks_listen(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        str | None, typer.Option(help="The endpoint's whsec_ secret, to check signatures.")
    ] = None,
) -> None:
    """Receive webhooks and print one line per event: for trying an endpoint out."""
    from crm_api.webhooks.listen import listen

    listen(host, port, secret, typer.echo)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from crm_api.migrate import upgrade_to_head

    upgrade_to_head(resolve_database_url(get_settings()))
    typer.echo("database is up to date")


@workspace_app.command("create")
def workspace_create(
    name: Annotated[str, typer.Argument(help="The workspace's name.")],
    country: Annotated[
        str | None, typer.Option(help="Default country (ISO 3166 alpha-2) for phone numbers.")
    ] = None,
) -> None:
    """Create a workspace; its admin API key is printed once, alone on the last line."""
    from crm_api.workspaces.service import create_workspace

    async def run() -> tuple[str, str]:
        settings = get_settings()
        async with transaction(resolve_database_url(settings), settings) as session:
            workspace, _, secret = await create_workspace(
                session, name, default_country=country.upper() if country else None
            )
            return str(workspace.id), secret

    workspace_id, secret = asyncio.run(run())
    typer.echo(f"workspace {name} created: {workspace_id}")
    typer.echo("admin API key (shown once):")
    typer.echo(secret)


@app.command()
def demo() -> None:
    """Create the demo workspace with sample data on first run; print its API key."""
    from crm_api.demo import ensure_demo_workspace

    settings = get_settings()
    key_file = settings.data_dir / "demo-api-key"

    async def run() -> str:
        known = key_file.read_text().strip() if key_file.exists() else None
        async with transaction(resolve_database_url(settings), settings) as session:
            return await ensure_demo_workspace(session, known)

    secret = asyncio.run(run())
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(secret + "\n")
    os.chmod(key_file, 0o600)
    typer.echo(f"demo workspace ready; its admin API key is also in {key_file}:")
    typer.echo(secret)


def _parse_map(pairs: list[str]) -> dict[str, str] | None:
    mapping = {}
    for pair in (p for item in pairs for p in item.split(",") if p.strip()):
        column, equals, field = pair.partition("=")
        if not equals or not column.strip() or not field.strip():
            raise typer.BadParameter(f"{pair!r} is not COLUMN=FIELD", param_hint="--map")
        mapping[column.strip()] = field.strip()
    return mapping or None


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or NDJSON file.")],
    resource: Annotated[
        ImportResource, typer.Option("--type", help="What the rows are.", case_sensitive=False)
    ],
    map_: Annotated[
        list[str],
        typer.Option(
            "--map",
            help="COLUMN=FIELD, comma-separated or repeated (--map E-mail=email)."
            " Default: columns named like a field.",
        ),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    api_key: Annotated[
        str, typer.Option(envvar="CRM_API_KEY", help="An API key of the workspace to import into.")
    ] = "",
    format: Annotated[
        ImportFormat | None, typer.Option(help="Default: from the file name.")
    ] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV cell separator.")] = None,
) -> None:
    """Import a file the way POST /v1/imports does, applied here with a progress bar. Exits
    with 1 when some rows were rejected (they are listed, and kept at /v1/imports/{id}/errors)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from crm_api.core.auth import principal_of_secret
    from crm_api.core.errors import ProblemError
    from crm_api.imports.service import (
        create_import,
        get_import,
        list_import_errors,
        run_import_step,
    )

    mapping = _parse_map(map_)
    settings = get_settings()
    database_url = resolve_database_url(settings)

    async def run() -> int:
        engine = create_engine(database_url, settings)
        sessionmaker = create_sessionmaker(engine)
        try:
            async with sessionmaker.begin() as session:
                principal = await principal_of_secret(session, api_key)
                if principal is None:
                    raise typer.BadParameter("unknown or revoked API key", param_hint="--api-key")
                with path.open("rb") as file:
                    record = await create_import(
                        session,
                        principal,
                        resource=resource,
                        file=file,
                        filename=path.name,
                        format=format,
                        mapping=mapping,
                        delimiter=delimiter,
                    )
            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
            with Progress(*columns, TimeRemainingColumn()) as progress:
                task = progress.add_task(f"import {record.id}", total=record.rows_total)
                more = True
                while more:
                    async with sessionmaker.begin() as session:
                        more = await run_import_step(session, principal.workspace_id, record.id)
                        record = await get_import(session, principal, record.id)
                    progress.update(task, completed=record.rows_processed)
            typer.echo(
                f"{record.status}: {record.created_count} created, {record.updated_count} "
                f"updated, {record.unchanged_count} unchanged, {record.failed_count} rejected"
            )
            if record.failed_count:
                async with sessionmaker.begin() as session:
                    params = ImportErrorListParams(limit=20)
                    errors, _ = await list_import_errors(session, principal, record.id, params)
                for error in errors:
                    fields = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in error.errors)
                    typer.echo(f"  line {error.line}: {error.detail} {fields}".rstrip())
                typer.echo(f"  all of them: GET /v1/imports/{record.id}/errors")
            return 1 if record.failed_count else 0
        except ProblemError as problem:
            typer.echo(f"error: {problem.detail or problem.title}", err=True)
            for error in problem.extensions.get("errors", []):
                typer.echo(f"  {'.'.join(map(str, error['loc']))}: {error['msg']}", err=True)
            return 2
        finally:
            await engine.dispose()

    raise typer.Exit(asyncio.run(run()))


@openapi_app.command("export")
def openapi_export(
    path: Annotated[Path, typer.Option(help="Where to write the document.")] = OPENAPI_PATH,
) -> None:
    """Write the OpenAPI document the app serves."""
    from crm_api.app import create_app

    document = create_app().openapi()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {path}")


def main() -> None:
    app()


@metrics_app.command("report")
def metrics_report(
    out: Annotated[Path, typer.Option(dir_okay=False, help="Where to write the HTML page.")],
    api_key: Annotated[
        str, typer.Option(envvar="CRM_API_KEY", help="An API key of the workspace (metrics:read).")
    ] = "",
    as_of: Annotated[
        datetime | None, typer.Option(help="The moment the metrics are of (UTC). Default: now.")
    ] = None,
) -> None:
    """Write a self-contained HTML page of the workspace's metrics: cohort heatmap, CLV
    distribution, RFM segments, NPS trend, pipeline funnels and service levels."""
    from crm_api.analytics.schemas import EARLIEST, LATEST
    from crm_api.analytics.service import metrics_report_html
    from crm_api.core.auth import principal_of_secret
    from crm_api.core.scopes import Scope
    from crm_api.workspaces.models import Workspace

    settings = get_settings()

    async def run() -> str:
        async with transaction(resolve_database_url(settings), settings) as session:
            principal = await principal_of_secret(session, api_key)
            if principal is None or not principal.has(Scope.metrics_read):
                raise typer.BadParameter(
                    "unknown or revoked API key, or one without metrics:read",
                    param_hint="--api-key",
                )
            workspace = await session.get(Workspace, principal.workspace_id)
            assert workspace is not None
            moment = as_of.replace(tzinfo=UTC) if as_of and as_of.tzinfo is None else as_of
            if moment is not None and not EARLIEST <= moment < LATEST:
                raise typer.BadParameter("a time from the year 1900 to 8999", param_hint="--as-of")
            return await metrics_report_html(session, principal, workspace.name, moment)

    page = asyncio.run(run())
    out.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {out} ({len(page.encode()) / 1024:,.0f} KiB)")
