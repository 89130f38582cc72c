from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm_api.core.roles import Role


class Settings(BaseSettings):
    """Every setting of the service, read from `CRM_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means an embedded PostgreSQL in `data_dir`.",
    )
    data_dir: Path = Field(default=Path(".crm-data"), description="Embedded PostgreSQL's home.")
    database_name: str = Field(default="crm", description="Database used on the embedded server.")
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_connect_timeout_seconds: float = Field(
        default=5, gt=0, description="How long opening a database connection may take."
    )
    db_pool_timeout_seconds: float = Field(
        default=5, gt=0, description="How long a request waits for a free pooled connection."
    )
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = Field(
        default=16 * 1024, gt=0, description="Larger request headers, all told, are 431."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis (redis://host:port/db): rate limits shared by every server process; "
        "unset, each process counts its own.",
    )
    rate_limit_requests: int = Field(
        default=600, ge=0, description="Requests an API key may make per window; 0: no limit."
    )
    rate_limit_window_seconds: int = Field(default=60, gt=0)
    rate_limit_requests_per_role: dict[Role, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description='Quotas of keys with these roles, as JSON: {"integration": 6000} (0: no '
        "limit); other keys have rate_limit_requests.",
    )
    audit_log: bool = Field(
        default=True,
        description="Each change made through the API is recorded in the audit log; off only "
        "to measure what it costs.",
    )
    row_level_security: bool = Field(
        default=True,
        description="Requests run as the role crm_service under row-level security, so the "
        "database keeps each workspace's rows to itself; off only to measure what it costs.",
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="Log records as JSON lines, or for reading in a terminal."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    import_max_bytes: int = Field(
        default=512 * 1024 * 1024, description="Largest file POST /v1/imports takes."
    )
    import_scan_seconds: float = Field(
        default=1, gt=0, description="How often a worker looks for imports to apply."
    )
    segment_scan_seconds: float = Field(
        default=2, gt=0, description="How often a worker looks at changed contacts' segments."
    )
    clv_scan_seconds: float = Field(
        default=2, gt=0, description="How often a worker looks for queued CLV runs."
    )
    loyalty_scan_seconds: float = Field(
        default=2,
        gt=0,
        description="How often a worker applies loyalty earning rules to new events, and "
        "expires points and reviews tiers whose time has come.",
    )
    lead_score_scan_seconds: float = Field(
        default=2,
        gt=0,
        description="How often a worker scores again the contacts that changed, and the next "
        "page of a pass over every contact.",
    )
    occasion_scan_seconds: float = Field(
        default=300,
        gt=0,
        description="How often a worker looks for today's birthdays and customer anniversaries.",
    )
    idempotency_ttl_hours: int = 24
    public_base_url: str | None = Field(
        default=None, description="Base URL used in Link/Location headers; default: the request's."
    )
    webhooks_allow_insecure: bool = Field(
        default=False,
        description="Allow plain-http webhook URLs and loopback/private addresses (development).",
    )
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    # The Standard Webhooks example schedule: 10 attempts over about three days. Each delay is
    # varied by +-20% (jitter) so endpoints that failed together are not retried together.
    webhook_retry_delays: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
        description="Seconds to wait after each failed attempt; the last failure marks the "
        "delivery failed.",
    )
    webhook_disable_after_hours: float = Field(
        default=120, description="An endpoint failing without a success this long is disabled."
    )
    webhook_response_body_bytes: int = 4096
    webhook_in_flight_per_endpoint: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Requests a worker has outstanding to one endpoint. 1 sends an endpoint's "
        "events one after another, in order; more overlaps them (receivers order by "
        "`sequence`), for receivers far away.",
    )
    worker_batch_size: int = Field(default=100, ge=1, le=1000)
    worker_concurrency: int = Field(default=32, ge=1, le=256)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    worker_lease_seconds: float = Field(
        default=60,
        gt=0,
        description="How long a claimed batch is a worker's; a worker that dies leaves its "
        "deliveries to others after this. At least the webhook timeout plus 5 s.",
    )
    run_dispatcher: bool = Field(
        default=False, description="Also deliver webhooks from the API server process."
    )
    sla_scan_seconds: float = Field(
        default=10, gt=0, description="How often a worker looks for SLA targets that just ran out."
    )
    event_retention_days: int = Field(
        default=30, ge=4, description="Events (and their deliveries) older than this are pruned."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
