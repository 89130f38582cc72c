import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from crm_api.core.db import Base, WorkspaceScopedMixin

IMPORT_RESOURCES = ("contacts", "companies", "orders")
IMPORT_FORMATS = ("csv", "ndjson")
IMPORT_STATUSES = ("queued", "running", "completed", "cancelled")
WAITING = text("status IN ('queued', 'running')")


class Import(WorkspaceScopedMixin, Base):
    """A file being applied row by row by the worker; its rows wait in import_chunks."""

    __tablename__ = "imports"
    __table_args__ = (
        CheckConstraint(f"resource IN {IMPORT_RESOURCES}", name="resource"),
        CheckConstraint(f"format IN {IMPORT_FORMATS}", name="format"),
        CheckConstraint(f"status IN {IMPORT_STATUSES}", name="status"),
        Index("ix_imports_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        # The worker's queue: only imports still to run are in it.
        Index("ix_imports_waiting", "created_at", postgresql_where=WAITING),
    )

    resource: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(Text, default="queued")
    # Column of the file → field path of the record (`email`, `address.city`, ...).
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ignored_columns: Mapped[list[str]] = mapped_column(default=list)
    # Whose rights the worker applies the rows with: the key that uploaded the file.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_processed: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class _OfAnImport:
    """Rows that belong to one import, and go with it."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[ForeignKeyConstraint]:  # noqa: N805 (declared_attr)
        return (
            ForeignKeyConstraint(
                ["workspace_id", "import_id"],
                ["imports.workspace_id", "imports.id"],
                ondelete="CASCADE",
            ),
        )

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-3)
    import_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-2)


class ImportChunk(_OfAnImport, Base):
    """Up to CHUNK_ROWS rows of an import, as parsed at upload: [[line, cells], ...]. The worker
    applies a chunk and deletes it in one transaction, so each is applied exactly once."""

    __tablename__ = "import_chunks"
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows: Mapped[list[Any]] = mapped_column(JSONB)


class ImportRowError(_OfAnImport, Base):
    """A row that was not applied, with why, by its line in the file."""

    __tablename__ = "import_errors"
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    values: Mapped[Any] = mapped_column(JSONB)
