"""Exports: every record of a filtered list, streamed from one server-side cursor (one snapshot)
a batch at a time, so memory stays flat however many rows there are."""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from pydantic import BaseModel, create_model
from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.companies.repository import CompanyRepository
from crm_api.companies.schemas import CompanyListParams, CompanyRead
from crm_api.contacts.repository import ContactRepository
from crm_api.contacts.schemas import ContactListParams, ContactRead
from crm_api.core.auth import Principal
from crm_api.core.repository import Repository
from crm_api.core.schemas import InputSchema, ListParams
from crm_api.core.scopes import Scope
from crm_api.core.tenancy import enter_workspace
from crm_api.exports.formats import ParquetStream, csv_header, csv_rows
from crm_api.orders.repository import OrderRepository
from crm_api.orders.schemas import OrderListParams, OrderRead

BATCH_ROWS = 2000


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.parquet: "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class ExportSource:
    resource: str
    scope: Scope
    read_schema: type[BaseModel]
    list_params: type[ListParams]
    repository: Callable[[AsyncSession], Repository[Any]]
    # (repository, workspace id, list params) → the list endpoint's filters
    filters: Callable[[Any, uuid.UUID, Any], list[ColumnElement[bool]]]

    @property
    def params(self) -> type[InputSchema]:
        return export_params(self.list_params)


SOURCES = {
    "contacts": ExportSource(
        "contacts",
        Scope.contacts_read,
        ContactRead,
        ContactListParams,
        ContactRepository,
        lambda repository, workspace_id, params: repository.list_filters(workspace_id, params),
    ),
    "companies": ExportSource(
        "companies",
        Scope.companies_read,
        CompanyRead,
        CompanyListParams,
        CompanyRepository,
        lambda repository, workspace_id, params: repository.list_filters(workspace_id, params),
    ),
    "orders": ExportSource(
        "orders",
        Scope.orders_read,
        OrderRead,
        OrderListParams,
        OrderRepository,
        lambda repository, workspace_id, params: repository.list_filters(params),
    ),
}


@cache
def export_params(list_params: type[ListParams]) -> type[InputSchema]:
    """The list endpoint's filters (no paging or sort: exports come oldest first), and `format`."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in list_params.model_fields.items()
        if name not in ("limit", "cursor", "sort")
    }
    fields["format"] = (ExportFormat, ExportFormat.csv)
    name = list_params.__name__.replace("ListParams", "ExportParams")
    return create_model(name, __base__=InputSchema, **fields)


@dataclass(frozen=True)
class Export:
    source: ExportSource
    format: ExportFormat
    statement: Select[Any]
    principal: Principal

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def plan_export(
    session: AsyncSession, principal: Principal, resource: str, params: BaseModel
) -> Export:
    """Check the filters now, while a problem can still be the response."""
    source = SOURCES[resource]
    values = params.model_dump(exclude={"format"}, exclude_unset=True)
    list_params = source.list_params.model_validate(values)
    repository = source.repository(session)
    where = source.filters(repository, principal.workspace_id, list_params)
    model: Any = repository.model
    statement = (
        repository.scoped(principal.workspace_id)
        .where(*where)
        .order_by(model.created_at, model.id)
        .execution_options(yield_per=BATCH_ROWS)
    )
    export_format: ExportFormat = params.format  # type: ignore[attr-defined]
    return Export(source, export_format, statement, principal)


async def _batches(
    sessionmaker: async_sessionmaker[AsyncSession], export: Export, isolated: bool
) -> AsyncIterator[list[dict[str, Any]]]:
    async with sessionmaker() as session:
        if isolated:  # as the request was (core/tenancy.py)
            await enter_workspace(
                session, export.principal.workspace_id, export.principal.owner_ids
            )
        result = await session.stream(export.statement)
        async for records in result.scalars().partitions(BATCH_ROWS):
            read = export.source.read_schema
            rows = [read.model_validate(r).model_dump(mode="json") for r in records]
            for record in records:
                session.expunge(record)  # what was sent is not kept
            yield rows


async def stream_export(
    sessionmaker: async_sessionmaker[AsyncSession], export: Export, *, isolated: bool
) -> AsyncIterator[bytes]:
    """The rows, read after the response has begun, on a session of their own."""
    columns = list(export.source.read_schema.model_fields)
    if export.format is ExportFormat.csv:
        yield csv_header(columns)
        async for rows in _batches(sessionmaker, export, isolated):
            yield csv_rows(columns, rows)
        return
    parquet = ParquetStream(export.source.read_schema)
    async for rows in _batches(sessionmaker, export, isolated):
        yield parquet.write(rows)
    yield parquet.close()
