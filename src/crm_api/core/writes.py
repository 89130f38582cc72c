"""The writes every synced record type does the same way: create with a free external id,
update under a row lock and If-Match, upsert by external id, batch upsert, soft delete. A
domain gives what differs: how a record is inserted, changed and announced."""

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.auth import Principal
from crm_api.core.batch import BatchItemResult, upsert_each
from crm_api.core.db import RecordMixin
from crm_api.core.errors import Conflict, ProblemError, database_problem
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
    # (session, principal, [(fields, external id)]) → new records in one flush, for imports.
    insert_many: (
        Callable[[AsyncSession, Principal, Sequence[tuple[F, str | None]]], Awaitable[list[M]]]
        | None
    ) = None

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

    async def import_rows(
        self,
        session: AsyncSession,
        principal: Principal,
        rows: Sequence[tuple[int, Any]],
        keys: Sequence[str],
    ) -> dict[int, "RowOutcome"]:
        """Apply import rows: each updates the record it names by external_id, else by these
        columns in turn (see match_rows), or creates one."""
        repository = self.repository(session)

        def lookup(column: str) -> Lookup:
            async def holding(values: Sequence[Any]) -> Mapping[Any, Sequence[Any]]:
                return await repository.holding(principal.workspace_id, column, values)

            return holding

        match_keys = [(c, attrgetter(c), lookup(c)) for c in ("external_id", *keys)]

        async def write(data: Any, match: Any) -> Written:
            if isinstance(match, ProblemError):
                raise match
            if match is None:
                record = await self.insert(session, principal, data, data.external_id)
                return Written(record, True, {})
            return Written(match, False, await self.change(session, principal, match, data))

        async def write_all(rows: Sequence[tuple[int, Any]]) -> dict[int, RowOutcome]:
            if repeats_a_key(rows, match_keys):
                raise RowsOverlap()
            matched = await match_rows(rows, match_keys, self.noun)
            outcomes: dict[int, RowOutcome] = {}
            new = []
            for index, data in rows:
                match = matched.get(index)
                if isinstance(match, ProblemError):
                    outcomes[index] = match  # rejected before anything is written
                elif match is None and self.insert_many is not None:
                    new.append((index, data))
                else:
                    outcomes[index] = await write(data, match)
            if new and self.insert_many is not None:
                items = [(data, data.external_id) for _, data in new]
                records = await self.insert_many(session, principal, items)
                for (index, _), record in zip(new, records, strict=True):
                    outcomes[index] = Written(record, True, {})
            return outcomes

        async def write_one(data: Any) -> Written:
            return await write(data, (await match_rows([(0, data)], match_keys, self.noun)).get(0))

        return await write_rows(session, rows, write_all, write_one)

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


@dataclass(frozen=True)
class Written:
    """One row of an import, applied."""

    record: Any
    created: bool
    changes: Changes


RowOutcome = Written | ProblemError
# A row's value for one matching key (None: the row has none), and the live records holding
# each value, locked for update.
KeyOf = Callable[[Any], Any]
Lookup = Callable[[Sequence[Any]], Awaitable[Mapping[Any, Sequence[Any]]]]


async def match_rows(
    rows: Sequence[tuple[int, Any]], keys: Sequence[tuple[str, KeyOf, Lookup]], noun: str
) -> dict[int, Any]:
    """The existing record each row names, trying the keys in order (external_id first):
    {index: record, or the Conflict when the row's key is ambiguous or its record already has
    another external_id}. Rows that name none are left out."""
    matched: dict[int, Any] = {}
    pending = list(rows)
    for key, key_of, lookup in keys:
        values = {index: key_of(data) for index, data in pending}
        holders = await lookup([v for v in set(values.values()) if v is not None])
        still = []
        for index, data in pending:
            found = holders.get(values[index], ()) if values[index] is not None else ()
            if not found:
                still.append((index, data))
            elif len(found) > 1:
                matched[index] = Conflict(
                    f"Its {key} `{values[index]}` belongs to {len(found)} {noun}s; "
                    "give an external_id or another key that names one.",
                    existing_ids=[str(record.id) for record in found],
                )
            elif key != "external_id" and _other_external_id(data, found[0]):
                matched[index] = Conflict(
                    f"Its {key} belongs to the {noun} {found[0].id}, which has the "
                    f"external_id `{found[0].external_id}`, not `{data.external_id}`.",
                    existing_id=str(found[0].id),
                )
            else:
                matched[index] = found[0]
        pending = still
    return matched


def _other_external_id(data: Any, record: Any) -> bool:
    sent = getattr(data, "external_id", None)
    return sent is not None and record.external_id is not None and record.external_id != sent


async def write_rows(
    session: AsyncSession,
    rows: Sequence[tuple[int, Any]],
    write_all: Callable[[Sequence[tuple[int, Any]]], Awaitable[dict[int, RowOutcome]]],
    write_one: Callable[[Any], Awaitable[Written]],
) -> dict[int, RowOutcome]:
    """Apply rows so that each is applied whole or not at all: all of them at once in one
    savepoint while none fails (a ProblemError returned for a row means it wrote nothing), else
    row by row, each in a savepoint of its own."""
    try:
        async with session.begin_nested():
            return await write_all(rows)
    except (ProblemError, DBAPIError) as error:
        if isinstance(error, DBAPIError) and database_problem(error) is None:
            raise
    outcomes: dict[int, RowOutcome] = {}
    for index, data in rows:
        try:
            async with session.begin_nested():
                outcomes[index] = await write_one(data)
        except ProblemError as error:
            outcomes[index] = error
        except DBAPIError as error:
            problem = database_problem(error)
            if problem is None:
                raise
            outcomes[index] = problem
    return outcomes


def repeats_a_key(
    rows: Sequence[tuple[int, Any]], keys: Sequence[tuple[str, KeyOf, Lookup]]
) -> bool:
    """Whether two rows share a matching key: then the later must see what the earlier wrote,
    so they cannot be written in one go."""
    for _, key_of, _ in keys:
        values = [value for _, data in rows if (value := key_of(data)) is not None]
        if len(values) != len(set(values)):
            return True
    return False


class RowsOverlap(ProblemError):
    """Never sent: makes write_rows apply a chunk row by row."""
