"""Repository[M]: every select starts scoped to one workspace and to live rows."""

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import LoaderOption

from crm_api.core.db import WorkspaceScopedMixin
from crm_api.core.pagination import PageRequest, keyset_after, order_by
from crm_api.core.schemas import RecordListParams

M = TypeVar("M", bound=WorkspaceScopedMixin)


class Repository(Generic[M]):
    model: type[M]
    # Rows with this column set are gone, as far as the API is concerned (None: never gone).
    gone_column: ClassVar[str | None] = "deleted_at"
    # What every read loads with the record (selectinload of its collections).
    eager: ClassVar[tuple[LoaderOption, ...]] = ()

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def scoped(self, workspace_id: uuid.UUID) -> Select[M]:
        model: Any = self.model
        statement = select(self.model).where(model.workspace_id == workspace_id)
        statement = statement.options(*self.eager)
        if self.gone_column is not None:
            statement = statement.where(getattr(model, self.gone_column).is_(None))
        return statement

    async def get(
        self, workspace_id: uuid.UUID, id: uuid.UUID, *, for_update: bool = False
    ) -> M | None:
        statement = self._get_by_id_statement(for_update)
        parameters = {"workspace_id": workspace_id, "id": id}
        return (await self.session.execute(statement, parameters)).scalar_one_or_none()

    @classmethod
    @cache
    def _get_by_id_statement(cls, for_update: bool) -> Select[M]:
        """Built once per repository class: building a statement costs more than running it."""
        model: Any = cls.model
        statement = (
            select(cls.model)
            .where(model.workspace_id == bindparam("workspace_id"), model.id == bindparam("id"))
            .options(*cls.eager)
        )
        if cls.gone_column is not None:
            statement = statement.where(getattr(model, cls.gone_column).is_(None))
        return statement.with_for_update() if for_update else statement

    async def live_by_ids(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[Any, M]:
        """These records (those not gone), by id."""
        if not ids:
            return {}
        model: Any = self.model
        statement = self.scoped(workspace_id).where(model.id.in_(set(ids)))
        rows: Sequence[Any] = (await self.session.execute(statement)).scalars().all()
        return {row.id: row for row in rows}

    async def get_by_external_ids(
        self, workspace_id: uuid.UUID, external_ids: Sequence[str], *, for_update: bool = False
    ) -> dict[str, M]:
        model: Any = self.model
        statement = self.scoped(workspace_id).where(model.external_id.in_(external_ids))
        if for_update:
            statement = statement.with_for_update()
        rows: Sequence[Any] = (await self.session.execute(statement)).scalars().all()
        return {row.external_id: row for row in rows if row.external_id is not None}

    async def holding(
        self, workspace_id: uuid.UUID, column: str, values: Sequence[Any]
    ) -> dict[Any, list[M]]:
        """The live records whose `column` is each of these values, oldest first, locked for
        update (imports match rows by them)."""
        if not values:
            return {}
        model: Any = self.model
        statement = (
            self.scoped(workspace_id)
            .where(getattr(model, column).in_(values))
            .order_by(model.id)
            .with_for_update()
        )
        found: dict[Any, list[M]] = {}
        for record in (await self.session.execute(statement)).scalars():
            found.setdefault(getattr(record, column), []).append(record)
        return found

    async def list_page(
        self,
        workspace_id: uuid.UUID,
        where: Sequence[ColumnElement[bool]],
        page: PageRequest,
    ) -> list[tuple[M, tuple[Any, ...]]]:
        """One page plus one row, each with the values of its sort keys (for the cursor)."""
        sort_values = [key.field.expression for key in page.order]
        statement = self.scoped(workspace_id).add_columns(*sort_values).where(*where)
        if page.after is not None:
            statement = statement.where(keyset_after(page.order, page.after))
        statement = statement.order_by(*order_by(page.order)).limit(page.limit + 1)
        rows = (await self.session.execute(statement)).all()
        return [(row[0], tuple(row[1:])) for row in rows]

    async def live_ids(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ids are records of the workspace that are not gone."""
        if not ids:
            return set()
        model: Any = self.model
        statement = select(model.id).where(
            model.workspace_id == workspace_id, model.id.in_(set(ids))
        )
        if self.gone_column is not None:
            statement = statement.where(getattr(model, self.gone_column).is_(None))
        return set((await self.session.execute(statement)).scalars())

    def add(self, record: M) -> None:
        self.session.add(record)


def record_filters(model: Any, params: RecordListParams) -> list[ColumnElement[bool]]:
    """The list filters every record type shares: external id, tag, time ranges, and the owner
    of records that have one."""
    where: list[ColumnElement[bool]] = []
    if params.external_id is not None:
        where.append(model.external_id == params.external_id)
    if (owner_id := getattr(params, "owner_id", None)) is not None:
        where.append(model.owner_id == owner_id)
    if params.tag is not None:
        where.append(model.tags.contains([params.tag]))
    if params.created_after is not None:
        where.append(model.created_at >= params.created_after)
    if params.created_before is not None:
        where.append(model.created_at < params.created_before)
    if params.updated_after is not None:
        where.append(model.updated_at >= params.updated_after)
    if params.updated_before is not None:
        where.append(model.updated_at < params.updated_before)
    return where


async def repoint(
    session: AsyncSession,
    model: Any,
    column: str,
    workspace_id: uuid.UUID,
    from_ids: Sequence[uuid.UUID],
    to_id: uuid.UUID,
) -> int:
    """Make every row of `model` whose `column` is one of from_ids point at to_id (deleted rows
    too: nothing may point at a merged record); versioned rows get a new version. How many."""
    values: dict[str, Any] = {column: to_id}
    if hasattr(model, "version"):
        values.update(version=model.version + 1, updated_at=func.now())
    result = await session.execute(
        update(model)
        .where(model.workspace_id == workspace_id, getattr(model, column).in_(from_ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
