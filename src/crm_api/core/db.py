"""ORM base, mixins, engine and the request's session."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import uuid_utils.compat as uuid_utils
from fastapi import Depends, Request
from sqlalchemy import DateTime, ForeignKey, Integer, MetaData, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from crm_api.settings import Settings

# Constraint names are predictable, so an IntegrityError can be mapped back to a field.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so new rows land at the right edge of every id index."""
    return uuid_utils.uuid7()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB,
        list[str]: ARRAY(Text),
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WorkspaceScopedMixin(TimestampMixin):
    """Every tenant row: primary key (workspace_id, id), so every reference carries its tenant."""

    @declared_attr
    def workspace_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True, sort_order=-2
        )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-1)


class RecordMixin(WorkspaceScopedMixin):
    """A resource of the public API: versioned, soft-deleted, addressable by an external id."""

    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    external_id: Mapped[str | None] = mapped_column(Text, default=None)


def create_engine(database_url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        # While the database is down, a request fails in seconds (503) rather than hanging.
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args={
            "server_settings": {"timezone": "UTC"},
            "timeout": settings.db_connect_timeout_seconds,
        },
    )


def create_sessionmaker(bind: Any) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=bind, expire_on_commit=False, autoflush=False)


async def driver_connection(connection: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's, for COPY and LISTEN (in its transaction)."""
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    return driver


@asynccontextmanager
async def transaction(database_url: str, settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on a short-lived engine, for commands and scripts; committed when the
    block succeeds."""
    engine = create_engine(database_url, settings)
    try:
        async with create_sessionmaker(engine).begin() as session:
            yield session
    finally:
        await engine.dispose()


async def get_session(request: Request) -> AsyncSession:
    """The request's session, opened and committed by CommitRoute (core/routing.py)."""
    session: AsyncSession = request.state.session
    return session


DbSession = Annotated[AsyncSession, Depends(get_session)]
