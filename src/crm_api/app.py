"""create_app(): the FastAPI application."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import text

import crm_api
from crm_api import models  # noqa: F401  (every mapper configured before the first request)
from crm_api.analytics.router import router as analytics_router
from crm_api.audit.router import router as audit_router
from crm_api.companies.router import router as companies_router
from crm_api.contacts.router import router as contacts_router
from crm_api.core.database_url import resolve_database_url
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.errors import (
    install_problem_handlers,
    problem_responses,
    record_allowed_methods,
    unavailable_response,
)
from crm_api.core.logs import configure_logging
from crm_api.core.middleware import RequestContext, RequestSizeLimit
from crm_api.core.openapi import finish_openapi
from crm_api.core.rate_limits import RateLimiter
from crm_api.core.telemetry import METRICS_MEDIA_TYPE, metrics_text
from crm_api.custom_fields.router import router as custom_fields_router
from crm_api.deals.router import pipelines_router
from crm_api.deals.router import router as deals_router
from crm_api.exports.router import router as exports_router
from crm_api.feedback.router import router as feedback_router
from crm_api.imports.router import router as imports_router
from crm_api.interactions.router import router as interactions_router
from crm_api.loyalty.router import router as loyalty_router
from crm_api.orders.router import router as orders_router
from crm_api.personal_data.router import router as personal_data_router
from crm_api.playbooks.router import router as playbooks_router
from crm_api.scoring.router import router as scoring_router
from crm_api.segments.router import router as segments_router
from crm_api.settings import Settings, get_settings
from crm_api.tasks import periodic_tasks
from crm_api.tickets.router import router as tickets_router
from crm_api.tickets.router import sla_policies_router
from crm_api.timeline.router import router as timeline_router
from crm_api.users.router import router as users_router
from crm_api.users.router import teams_router
from crm_api.webhooks.dispatcher import Dispatcher
from crm_api.webhooks.router import events_router
from crm_api.webhooks.router import router as webhook_endpoints_router
from crm_api.workspaces.router import router as api_keys_router
from crm_api.workspaces.router import workspace_router

# Every resource family's router, mounted under /v1.
V1_ROUTERS = (
    contacts_router,
    companies_router,
    custom_fields_router,
    users_router,
    teams_router,
    pipelines_router,
    deals_router,
    sla_policies_router,
    tickets_router,
    interactions_router,
    feedback_router,
    orders_router,
    loyalty_router,
    segments_router,
    scoring_router,
    playbooks_router,
    analytics_router,
    timeline_router,
    audit_router,
    personal_data_router,
    imports_router,
    exports_router,
    api_keys_router,
    workspace_router,
    events_router,
    webhook_endpoints_router,
)


class Health(BaseModel):
    status: str = Field(examples=["ok"])


DESCRIPTION = """\
A headless CRM: contacts and companies, with cursor pagination, optimistic concurrency
(`ETag`/`If-Match`), idempotent POSTs (`Idempotency-Key`), upserts by your own ids
(`external_id`) and RFC 9457 problem details for every error.

Every answer carries `X-Request-ID`: the one you sent (up to 128 of `A-Z a-z 0-9 . _ : -`),
else a new UUID. Quote it when you report a problem: the server's log records of the request
carry it too.

## Events and webhooks

Every change is an event, recorded in the transaction that makes it: a rolled-back write
announces nothing, a committed one is never missed. Read them from `GET /v1/events`, or have
them POSTed to a webhook endpoint. The body is
`{"id", "type", "timestamp", "sequence", "data", "changes"}`: `data` is the record as this API
returns it (with its `version`), `changes` gives `{field: {old, new}}` on updates, and
`sequence` increases strictly per workspace in commit order, without gaps.

Webhooks follow [Standard Webhooks](https://www.standardwebhooks.com): headers `webhook-id`
(the event's id: dedupe on it), `webhook-timestamp` (Unix seconds of the attempt) and
`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the endpoint's
`whsec_` secret; two signatures, space-separated, for 24 h after a rotation). Only a 2xx answer
within 15 s counts. Failures are retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h
and 24 h (±20 %, or later when `Retry-After` says so); then the delivery is failed. `410 Gone`,
or five days without a success, disables the endpoint (`webhook_endpoint.disabled`). An
endpoint's events are sent in `sequence` order when nothing fails; a failing one never holds
back the others, so compare `sequence` (or `data.version`) to drop a stale update.
"""


def operation_id(route: APIRoute) -> str:
    """The endpoint function's name, e.g. `contacts_list`: stable names for generated clients."""
    return route.name


def create_served_app() -> FastAPI:
    """The app `crm-api serve` runs, in each server process: logging set up first."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)


def create_app(settings: Settings | None = None, database_url: str | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "engine", None) is not None:  # given by the caller (tests)
            yield
            return
        engine = create_engine(database_url or resolve_database_url(settings), settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        stop = asyncio.Event()
        dispatcher = None
        if settings.run_dispatcher:
            dispatcher = asyncio.create_task(
                Dispatcher(
                    engine, app.state.sessionmaker, settings, tasks=periodic_tasks(settings)
                ).run(stop)
            )
        try:
            yield
        finally:
            stop.set()
            if dispatcher is not None:
                await dispatcher
            await engine.dispose()

    app = FastAPI(
        title="crm-api",
        version=crm_api.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings)
    install_problem_handlers(app)
    finish_openapi(app)
    app.add_middleware(
        RequestSizeLimit,
        max_bytes=settings.max_body_bytes,
        exceptions={"/v1/imports": settings.import_max_bytes},
        max_header_bytes=settings.max_header_bytes,
    )
    app.add_middleware(RequestContext)  # the outermost: it sees every answer, the 413s too

    v1 = APIRouter(prefix="/v1")
    for router in V1_ROUTERS:
        v1.include_router(router)
        record_allowed_methods(app, router, prefix="/v1")
    app.include_router(v1)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Operational metrics in Prometheus' text format",
        response_class=Response,
        responses={
            200: {
                "description": "The exposition: requests by operation and status, latency, "
                "the database pool, the webhook outbox's lag, delivery attempts.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics(request: Request) -> Response:
        """For operators' scrapers; no API key (serve it on a private network)."""
        async with request.app.state.sessionmaker() as session:
            body = await metrics_text(request.app.state.engine, session)
        return Response(body, media_type=METRICS_MEDIA_TYPE)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def health_live() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database answers",
        response_model=Health,
        responses=problem_responses(503),
    )
    async def health_ready(request: Request) -> JSONResponse:
        try:
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return unavailable_response(request, "The database does not answer.")
        return JSONResponse({"status": "ok"})

    return app
