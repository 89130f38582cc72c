"""The writes every synced record type does the same way: create with a free external id,
update under a row lock and If-Match, upsert by external id, batch upsert, soft delete. A
domain gives what differs: how a record is inserted, changed and announced."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.auth import Principal
from crm_api.core.batch import BatchItemResult, upsert_each
from crm_api.core.db import RecordMixin
from crm_api.core.patch import Changes
from crm_api.core.records import (
    ensure_external_id_free,
    get_or_404,
    soft_delete,
    upsert_by_external_id,
)
from crm_api.core.repository import Repository

M = TypeVar("M", bound=RecordMixin)
F = TypeVar("F", bound=BaseModel)


@dataclass(frozen=True)
class RecordWrites(Generic[M, F]):
    repository: Callable[[AsyncSession], Repository[M]]
    noun: str
    batch_path: str
    # (session, principal, fields, external id) → the new record, flushed and announced.
    insert: Callable[[AsyncSession, Principal, F, str | None], Awaitable[M]]
    # (session, principal, record, fields) → what changed, version bumped and announced.
    change: Callable[[AsyncSession, Principal, M, F], Awaitable[Changes]]
    # (session, action, record): the event of a deletion.
    announce: Callable[[AsyncSession, str, M], None]

    async def create(self, session: AsyncSession, principal: Principal, data: Any) -> M:
        await ensure_external_id_free(
            self.repository(session), principal.workspace_id, data.external_id, self.noun
        )
        return await self.insert(session, principal, data, data.external_id)

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        id: uuid.UUID,
        data: Any,
        if_match: str | None,
    ) -> M:
        repository = self.repository(session)
        record = await get_or_404(
            repository, principal.workspace_id, id, self.noun, for_update=True, if_match=if_match
        )
        if "external_id" in data.model_fields_set and data.external_id != record.external_id:
            await ensure_external_id_free(
                repository, principal.workspace_id, data.external_id, self.noun
            )
        await self.change(session, principal, record, data)
        return record

    async def upsert(
        self, session: AsyncSession, principal: Principal, external_id: str, data: F
    ) -> tuple[M, bool, Changes]:
        async def create() -> M:
            return await self.insert(session, principal, data, external_id)

        async def update(record: M) -> Changes:
            return await self.change(session, principal, record, data)

        return await upsert_by_external_id(
            session, self.repository(session), principal.workspace_id, external_id, create, update
        )

    async def batch_upsert(
        self, session: AsyncSession, principal: Principal, items: Sequence[Any]
    ) -> list[BatchItemResult]:
        async def upsert(item: Any) -> tuple[M, bool, Changes]:
            return await self.upsert(session, principal, item.external_id, item)

        return await upsert_each(session, self.batch_path, enumerate(items), upsert)

    async def delete(
        self, session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
    ) -> M:
        """Soft-delete and announce; the deleted record, for what else must follow."""
        record = await get_or_404(
            self.repository(session),
            principal.workspace_id,
            id,
            self.noun,
            for_update=True,
            if_match=if_match,
        )
        soft_delete(record)
        await session.flush()
        self.announce(session, "deleted", record)
        return record
