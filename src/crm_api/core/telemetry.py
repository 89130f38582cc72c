"""What operators watch, in Prometheus' format at GET /metrics: requests by operation and
status, their latency, the database pool, how far webhook delivery lags behind, and what
delivery attempts gave. Counters live in the process that counts (a `crm-api worker` serves
its own with --metrics-port); the outbox lag is read from the database, so any server tells
the truth about all workers."""

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool

from crm_api.webhooks.models import WebhookDelivery

REQUESTS = Counter(
    "crm_http_requests", "HTTP requests answered, by operation and status.",
    ["operation", "method", "status"],
)  # fmt: skip
LATENCY = Histogram(
    "crm_http_request_duration_seconds", "Time to answer a request, by operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
POOL_CONNECTIONS = Gauge(
    "crm_db_pool_connections", "Database connections of this process's pool, by state.", ["state"]
)
POOL_SIZE = Gauge("crm_db_pool_size", "Connections the pool keeps (before overflow).")
OUTBOX_DUE = Gauge(
    "crm_webhook_deliveries_due", "Webhook deliveries whose time has come and that wait."
)
OUTBOX_LAG = Gauge(
    "crm_webhook_outbox_lag_seconds",
    "How long the oldest due webhook delivery has waited for a worker (0: none waits).",
)
DELIVERY_ATTEMPTS = Counter(
    "crm_webhook_delivery_attempts",
    "Webhook delivery attempts, by result: succeeded, retrying (scheduled again), failed, or"
    " lease_lost (the attempt took longer than its lease; another worker has the delivery).",
    ["result"],
)
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST


def observe_request(operation: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(operation, method, str(status)).inc()
    LATENCY.labels(operation).observe(seconds)


async def metrics_text(engine: AsyncEngine, session: AsyncSession) -> bytes:
    """The exposition, with the gauges read now."""
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        POOL_SIZE.set(pool.size())
        POOL_CONNECTIONS.labels("in_use").set(pool.checkedout())
        POOL_CONNECTIONS.labels("idle").set(pool.checkedin())
        POOL_CONNECTIONS.labels("overflow").set(max(pool.overflow(), 0))
    now = datetime.now(UTC)
    due, oldest = (
        await session.execute(
            select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now
            )
        )
    ).one()
    OUTBOX_DUE.set(due)
    OUTBOX_LAG.set(0 if oldest is None else (now - oldest).total_seconds())
    return generate_latest()
