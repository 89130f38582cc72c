import uuid
from typing import Any

from sqlalchemy import Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, WorkspaceScopedMixin


class AuditEntry(WorkspaceScopedMixin, Base):
    """One change made through the API (or an import in a key's name), in the transaction that
    made it. The service role may only add entries (migration 3c7d2e9a1f55); no one may change
    them."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        Index("ix_audit_log_workspace_id_resource_id", "workspace_id", "resource_id"),
    )

    api_key_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    request_id: Mapped[str | None] = mapped_column(Text)
    client_address: Mapped[str | None] = mapped_column(Text)
    operation: Mapped[str | None] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(Text)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    event_id: Mapped[uuid.UUID]
