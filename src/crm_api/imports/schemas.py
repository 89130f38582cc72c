import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from crm_api.core.errors import FieldError
from crm_api.core.pagination import Page
from crm_api.core.schemas import InputSchema, ListParams, ReadSchema


class ImportResource(StrEnum):
    contacts = "contacts"
    companies = "companies"
    orders = "orders"


class ImportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


class ImportStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    cancelled = "cancelled"


class ImportCounts(ReadSchema):
    created: int = Field(validation_alias="created_count")
    updated: int = Field(validation_alias="updated_count")
    unchanged: int = Field(validation_alias="unchanged_count")
    failed: int = Field(
        validation_alias="failed_count", description="Rows not applied: see `/errors`."
    )


class ImportRead(ReadSchema):
    id: uuid.UUID
    resource: ImportResource
    format: ImportFormat
    filename: str | None
    status: ImportStatus
    mapping: dict[str, str] = Field(description="Column of the file → field of the record.")
    ignored_columns: list[str] = Field(description="Columns of the file that map to no field.")
    rows_total: int = Field(description="Rows in the file (the header line not counted).")
    rows_processed: int = Field(description="Rows applied or rejected so far.")
    counts: ImportCounts
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ImportPage(Page[ImportRead]):
    pass


class ImportListParams(ListParams):
    status: ImportStatus | None = None
    resource: ImportResource | None = None


class ImportRowErrorRead(ReadSchema):
    line: int = Field(description="Line of the file where the row starts (the header is line 1).")
    status: int = Field(description="The HTTP status the same write through the API would get.")
    title: str
    detail: str
    errors: list[FieldError] = Field(
        description='Per field: `loc` is `["row", <column>, ...]`, naming the file\'s column.'
    )
    values: Any = Field(description="The row as read from the file.")


class ImportRowErrorPage(Page[ImportRowErrorRead]):
    pass


class ImportErrorListParams(InputSchema):
    """By line, a page at a time."""

    limit: int = Field(default=50, ge=1, le=500, description="Page size, 1 to 500.")
    cursor: str | None = Field(
        default=None, max_length=2048, description="`next_cursor` of the previous page."
    )


def import_read(record: Any) -> ImportRead:
    fields = {name: getattr(record, name) for name in ImportRead.model_fields if name != "counts"}
    return ImportRead.model_validate({**fields, "counts": ImportCounts.model_validate(record)})
