"""Workspace documents: set-ups a workspace has at most one of (its loyalty program, lead
scoring, playbooks), read whole and replaced whole by PUT, with a version for ETags."""

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.errors import NotFound, PreconditionFailed
from crm_api.core.etag import check_if_match
from crm_api.core.patch import Changes, assign


class Document(Protocol):
    workspace_id: Any
    version: Any
    updated_at: Any


D = TypeVar("D", bound=Document)


async def document_of(
    session: AsyncSession, model: type[D], workspace_id: uuid.UUID, *, for_update: bool = False
) -> D | None:
    table: Any = model
    statement = select(model).where(table.workspace_id == workspace_id)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def document_or_404(
    session: AsyncSession,
    model: type[D],
    workspace_id: uuid.UUID,
    missing: str,
    *,
    for_update: bool = False,
) -> D:
    """The workspace's document; 404 saying how to make it (`missing`) when it has none."""
    document = await document_of(session, model, workspace_id, for_update=for_update)
    if document is None:
        raise NotFound(missing)
    return document


async def put_document(
    session: AsyncSession,
    model: type[D],
    workspace_id: uuid.UUID,
    values: dict[str, Any],
    if_match: str | None,
    **when_created: Any,
) -> tuple[D, bool, Changes]:
    """Store the workspace's document or replace the one it has: (the document, whether it was
    created, what changed). Of two first PUTs one creates and the other, waiting on its row,
    replaces what it made; the document stays locked until the transaction ends."""
    table: Any = model
    statement = (
        insert(table)
        .values(workspace_id=workspace_id, **when_created, **values)
        .on_conflict_do_nothing(index_elements=["workspace_id"])
        .returning(table.workspace_id)
    )
    created = (await session.execute(statement)).first() is not None
    document = await document_of(session, model, workspace_id, for_update=True)
    assert document is not None
    changes: Changes = {}
    if created:
        if if_match is not None:
            raise PreconditionFailed("There is none yet for If-Match to match.")
        return document, True, changes
    check_if_match(if_match, document.version)
    for field, value in values.items():
        assign(document, changes, field, value)
    if changes:
        document.version += 1
        document.updated_at = datetime.now(UTC)
    return document, False, changes
