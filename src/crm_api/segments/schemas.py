import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from crm_api.contacts.schemas import ContactRead
from crm_api.core.filters import Filter, FilterAll, FilterAny, FilterCondition
from crm_api.core.pagination import Page
from crm_api.core.schemas import InputSchema, ListParams, LongText, ReadSchema, ShortText

MAX_MEMBERS_PER_CALL = 1_000
FILTER = TypeAdapter[FilterCondition | FilterAll | FilterAny](Filter)


class SegmentKind(StrEnum):
    dynamic = "dynamic"
    static = "static"


EXAMPLE_FILTER: dict[str, Any] = {
    "all": [
        {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
        {"field": "metrics.total_spent", "op": "gte", "value": "500"},
        {"field": "company.industry", "op": "in", "value": ["Software", "Retail"]},
    ]
}


class SegmentCreate(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [{"name": "Big spenders", "kind": "dynamic", "filter": EXAMPLE_FILTER}]
        }
    }

    name: ShortText
    description: LongText | None = None
    kind: SegmentKind
    filter: Filter | None = Field(
        default=None,
        description="A dynamic segment's filter over contacts (the filter language of "
        "`POST /v1/contacts/search`, `metrics.*` included); a static segment has none.",
    )
    contact_ids: list[uuid.UUID] | None = Field(
        default=None,
        max_length=MAX_MEMBERS_PER_CALL,
        description="A static segment's first members.",
    )


class SegmentUpdate(InputSchema):
    """Only the fields sent change. A new filter re-evaluates the segment at once, announcing
    each contact that joins or leaves."""

    model_config = {"json_schema_extra": {"examples": [{"name": "Top spenders"}]}}

    name: ShortText = None  # type: ignore[assignment]
    description: LongText | None = None
    filter: Filter = None  # type: ignore[assignment]


class SegmentRead(ReadSchema):
    id: uuid.UUID
    name: str
    description: str | None
    kind: SegmentKind
    filter: dict[str, Any] | None
    member_count: int
    refreshed_at: datetime | None = Field(
        description="When a dynamic segment was last evaluated over every contact."
    )
    refresh_error: str | None = Field(
        description="Why the last evaluation failed (its filter names a custom field that was "
        "deleted, say); the members stay as they were."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class SegmentListParams(ListParams):
    kind: SegmentKind | None = None


class SegmentPage(Page[SegmentRead]):
    pass


class SegmentPreview(InputSchema):
    model_config = {"json_schema_extra": {"examples": [{"filter": EXAMPLE_FILTER, "limit": 20}]}}

    filter: Filter
    limit: Annotated[int, Field(ge=1, le=500, description="How many contacts to return.")] = 50


class SegmentPreviewResult(ReadSchema):
    count: int = Field(description="How many contacts the filter selects now.")
    data: list[ContactRead] = Field(description="The first of them, oldest first.")


class SegmentMembersChange(InputSchema):
    model_config = {"json_schema_extra": {"examples": [{"contact_ids": [str(uuid.UUID(int=1))]}]}}

    contact_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_MEMBERS_PER_CALL)


class SegmentMembersResult(ReadSchema):
    changed: int = Field(description="How many contacts joined (or left); the others already had.")
    member_count: int


class SegmentMembership(ReadSchema):
    """The data of `segment.member_added` and `segment.member_removed`."""

    segment_id: uuid.UUID
    segment_name: str
    contact_id: uuid.UUID


class SegmentMemberListParams(ListParams):
    pass
