"""`POST /v1/<resource>/batch/upsert`: per-item results in input order; an item that fails
changes nothing and carries its problem, the others are applied."""

import uuid
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Protocol, TypeVar

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.errors import InvalidInput, Problem, ProblemError
from crm_api.core.patch import Changes
from crm_api.core.schemas import ReadSchema

MAX_BATCH_ITEMS = 1000


class BatchItemStatus(StrEnum):
    created = "created"
    updated = "updated"
    unchanged = "unchanged"
    error = "error"


class BatchItemResult(ReadSchema):
    index: int = Field(description="Position of the item in the request.")
    external_id: str
    status: BatchItemStatus
    id: uuid.UUID | None = None
    version: int | None = None
    error: Problem | None = None


class BatchUpsertResult(ReadSchema):
    results: list[BatchItemResult] = Field(description="One per item, in input order.")


class BatchItem(Protocol):
    @property
    def external_id(self) -> str: ...


class Versioned(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    @property
    def version(self) -> int: ...


Item = TypeVar("Item", bound=BatchItem)


def item_result(
    index: int, external_id: str, record: Versioned, created: bool, changes: Changes
) -> BatchItemResult:
    if created:
        status = BatchItemStatus.created
    else:
        status = BatchItemStatus.updated if changes else BatchItemStatus.unchanged
    return BatchItemResult(
        index=index, external_id=external_id, status=status, id=record.id, version=record.version
    )


def item_error(path: str, index: int, external_id: str, error: ProblemError) -> BatchItemResult:
    problem = error.body(f"{path}#items/{index}")
    # The item's fields are at body.items.<index> of this request.
    for field_error in problem.get("errors", []):
        field_error["loc"] = ["body", "items", index, *field_error["loc"][1:]]
    return BatchItemResult.model_validate(
        {
            "index": index,
            "external_id": external_id,
            "status": BatchItemStatus.error,
            "error": problem,
        }
    )


def repeated_external_id() -> InvalidInput:
    return InvalidInput(("body", "external_id"), "Repeats an earlier item's external_id.")


async def upsert_each(
    session: AsyncSession,
    path: str,
    items: Iterable[tuple[int, Item]],
    upsert: Callable[[Item], Awaitable[tuple[Versioned, bool, Changes]]],
) -> list[BatchItemResult]:
    """Upsert (index, item) pairs one by one, each in a savepoint, so a failing item takes only
    its own changes (and its events) back."""
    results = []
    seen: set[str] = set()
    for index, item in items:
        try:
            if item.external_id in seen:
                raise repeated_external_id()
            seen.add(item.external_id)
            async with session.begin_nested():
                record, created, changes = await upsert(item)
            results.append(item_result(index, item.external_id, record, created, changes))
        except ProblemError as error:
            results.append(item_error(path, index, item.external_id, error))
    return results
