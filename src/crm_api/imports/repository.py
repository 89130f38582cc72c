import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, text

from crm_api.core.pagination import PageRequest, SortField, keyset_after, order_by
from crm_api.core.repository import Repository
from crm_api.imports.models import WAITING, Import, ImportChunk, ImportRowError
from crm_api.imports.schemas import ImportListParams

IMPORT_ID_SORT = SortField(Import.id, uuid.UUID)
IMPORT_SORTS = {"created_at": SortField(Import.created_at, datetime)}
ERROR_LINE_SORT = SortField(ImportRowError.line, int)


class ImportRepository(Repository[Import]):
    model = Import
    gone_column = None

    def list_filters(self, params: ImportListParams) -> list[ColumnElement[bool]]:
        where = []
        if params.status is not None:
            where.append(Import.status == params.status)
        if params.resource is not None:
            where.append(Import.resource == params.resource)
        return where

    async def claim_waiting(self) -> Import | None:
        """The oldest import still to run that no other worker holds, locked until this
        transaction ends (so each import is worked on by one worker at a time)."""
        statement = (
            select(Import)
            .where(WAITING)
            .order_by(Import.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def add_chunk(
        self, workspace_id: uuid.UUID, import_id: uuid.UUID, position: int, rows: list[Any]
    ) -> None:
        await self.session.execute(
            insert(ImportChunk).values(
                workspace_id=workspace_id, import_id=import_id, position=position, rows=rows
            )
        )

    async def take_next_chunk(self, record: Import) -> list[Any] | None:
        """The first chunk not applied yet, deleted: it is applied in this same transaction."""
        first = (
            select(ImportChunk.position)
            .where(
                ImportChunk.workspace_id == record.workspace_id,
                ImportChunk.import_id == record.id,
            )
            .order_by(ImportChunk.position)
            .limit(1)
            .scalar_subquery()
        )
        statement = (
            delete(ImportChunk)
            .where(
                ImportChunk.workspace_id == record.workspace_id,
                ImportChunk.import_id == record.id,
                ImportChunk.position == first,
            )
            .returning(ImportChunk.rows)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def drop_chunks(self, record: Import) -> None:
        await self.session.execute(
            delete(ImportChunk).where(
                ImportChunk.workspace_id == record.workspace_id,
                ImportChunk.import_id == record.id,
            )
        )

    async def add_errors(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(ImportRowError), rows)

    async def error_page(
        self, record: Import, page: PageRequest
    ) -> list[tuple[ImportRowError, tuple[Any, ...]]]:
        statement = select(ImportRowError, ImportRowError.line).where(
            ImportRowError.workspace_id == record.workspace_id,
            ImportRowError.import_id == record.id,
        )
        if page.after is not None:
            statement = statement.where(keyset_after(page.order[:1], page.after[:1]))
        statement = statement.order_by(*order_by(page.order[:1])).limit(page.limit + 1)
        rows = (await self.session.execute(statement)).all()
        return [(row[0], (row[1], row[1])) for row in rows]

    async def analyze(self, tables: Sequence[str]) -> None:
        """Refresh the planner's statistics of these tables (it samples: a fraction of a second
        even on millions of rows; writers are not blocked)."""
        for table in tables:
            await self.session.execute(text(f'ANALYZE "{table}"'))
