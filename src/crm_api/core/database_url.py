"""Which PostgreSQL this process talks to."""

from crm_api.core.embedded import start_embedded_postgres, to_asyncpg_url
from crm_api.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """`CRM_DATABASE_URL` when given, else the embedded server in `CRM_DATA_DIR`."""
    if settings.database_url:
        return to_asyncpg_url(settings.database_url)
    return start_embedded_postgres(settings.data_dir, settings.database_name)
