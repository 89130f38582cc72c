"""What every record type's service does the same way: load-or-404, If-Match, version bumps,
soft deletes, field application and upserts by external id."""

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import RecordMixin, WorkspaceScopedMixin
from crm_api.core.errors import Conflict, InvalidInput, NotFound
from crm_api.core.etag import check_if_match
from crm_api.core.pagination import SortField, make_page, page_request
from crm_api.core.patch import Changes, assign, merge_patch
from crm_api.core.repository import Repository
from crm_api.core.schemas import ListParams

M = TypeVar("M", bound=RecordMixin)
W = TypeVar("W", bound=WorkspaceScopedMixin)
L = TypeVar("L")


async def get_or_404(
    repository: Repository[W],
    workspace_id: uuid.UUID,
    id: uuid.UUID,
    noun: str,
    *,
    for_update: bool = False,
    if_match: str | None = None,
) -> W:
    record = await repository.get(workspace_id, id, for_update=for_update)
    if record is None:
        raise NotFound(f"No {noun} with id {id}.")
    if if_match is not None:
        check_if_match(if_match, getattr(record, "version", 1))
    return record


async def list_records(
    repository: Repository[W],
    workspace_id: uuid.UUID,
    params: ListParams,
    where: Sequence[ColumnElement[bool]],
    sorts: Mapping[str, SortField],
    id_sort: SortField,
    source: str = "query",
    default_sort: str = "created_at",
) -> tuple[list[W], str | None]:
    """One page of a list endpoint and the cursor of the next."""
    page = page_request(
        sort=params.sort,
        allowed_sorts=sorts,
        id_field=id_sort,
        filters=params.filters(),
        cursor=params.cursor,
        limit=params.limit,
        source=source,
        default_sort=default_sort,
    )
    return make_page(await repository.list_page(workspace_id, where, page), page)


async def get_by_external_id_or_404(
    repository: Repository[M], workspace_id: uuid.UUID, external_id: str, noun: str
) -> M:
    found = await repository.get_by_external_ids(workspace_id, [external_id])
    if external_id not in found:
        raise NotFound(f"No {noun} with external_id `{external_id}`.")
    return found[external_id]


class Versioned(Protocol):
    """A record with optimistic concurrency and soft deletes (RecordMixin and the like)."""

    version: int
    updated_at: datetime
    deleted_at: datetime | None


def bump_version(record: Versioned, changes: Changes) -> None:
    if changes:
        record.version = record.version + 1
        record.updated_at = func.now()  # type: ignore[assignment]


def soft_delete(record: Versioned) -> None:
    record.deleted_at = func.now()  # type: ignore[assignment]
    record.version = record.version + 1


def apply_fields(
    record: Any,
    data: BaseModel,
    fields: Iterable[str],
    converters: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Changes:
    """Write the sent fields onto the record; objects merge (RFC 7396), `null` clears.
    Every value is converted before any is assigned, so a bad one leaves the record untouched."""
    converters = converters or {}
    values: dict[str, Any] = {}
    for field in sorted(fields):
        value = getattr(data, field)
        if field in converters:
            value = converters[field](value)
        elif isinstance(value, BaseModel):
            value = (
                merge_patch(getattr(record, field), value.model_dump(exclude_unset=True)) or None
            )
        elif field == "custom_fields":
            value = merge_patch(record.custom_fields, value) if value is not None else {}
        elif field == "tags" and value is None:
            value = []
        elif isinstance(value, StrEnum):
            value = value.value
        values[field] = value
    changes: Changes = {}
    for field, value in values.items():
        assign(record, changes, field, value)
    return changes


async def ensure_external_id_free(
    repository: Repository[M], workspace_id: uuid.UUID, external_id: str | None, noun: str
) -> None:
    if external_id is None:
        return
    existing = await repository.get_by_external_ids(workspace_id, [external_id])
    if external_id in existing:
        raise Conflict(
            f"Another {noun} already has external_id `{external_id}`.",
            existing_id=str(existing[external_id].id),
        )


async def upsert_by_external_id(
    session: AsyncSession,
    repository: Repository[M],
    workspace_id: uuid.UUID,
    external_id: str,
    create: Callable[[], Awaitable[M]],
    update: Callable[[M], Awaitable[Changes]],
) -> tuple[M, bool, Changes]:
    """Update the live record with this external id, or create it. Of two concurrent upserts of
    one new id, the second insert waits on the unique index, fails, then updates the first's row."""
    for _ in range(2):
        existing = await repository.get_by_external_ids(
            workspace_id, [external_id], for_update=True
        )
        if external_id in existing:
            record = existing[external_id]
            return record, False, await update(record)
        try:
            async with session.begin_nested():
                record = await create()
                await session.flush()
            return record, True, {}
        except IntegrityError as error:
            if "external_id" not in str(error.orig):
                raise
    raise Conflict("The record was changed concurrently; retry the request.")


def relink(
    current: Sequence[L],
    wanted: Iterable[uuid.UUID],
    id_of: Callable[[L], uuid.UUID],
    make: Callable[[uuid.UUID], L],
) -> list[L] | None:
    """Link rows (team members, a deal's contacts) for the wanted ids, sorted and once each,
    keeping the rows of those that stay; None when the set is unchanged."""
    ids = sorted(set(wanted))
    if ids == [id_of(link) for link in current]:
        return None
    kept = {id_of(link): link for link in current}
    return [kept.get(id) or make(id) for id in ids]


async def ensure_live_references(
    workspace_id: uuid.UUID,
    references: Iterable[tuple[str, Repository[Any], str, uuid.UUID | None]],
) -> None:
    """Each (field, repository, noun, id) given an id names a live record of the workspace;
    otherwise 422 naming the field. One query per field, however many records are checked."""
    wanted: dict[str, tuple[Repository[Any], str, list[uuid.UUID]]] = {}
    for field, repository, noun, value in references:
        if value is not None:
            wanted.setdefault(field, (repository, noun, []))[2].append(value)
    for field, (repository, noun, ids) in wanted.items():
        missing = set(ids) - await repository.live_ids(workspace_id, ids)
        if missing:
            raise InvalidInput(("body", field), f"No {noun} with id {min(missing)}.")
