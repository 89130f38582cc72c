from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl_hours: int = 24
    public_base_url: str | None = Field(
        default=None, description="Base URL used in Link/Location headers; default: the request's."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
