import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from crm_api.core.batch import MAX_BATCH_ITEMS
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    CustomFields,
    ExternalId,
    InputSchema,
    LongText,
    ReadSchema,
    RecordListParams,
    ShortText,
    Tags,
    UtcDatetime,
    unique_tags,
)


class InteractionChannel(StrEnum):
    email = "email"
    call = "call"
    meeting = "meeting"
    chat = "chat"
    sms = "sms"
    social = "social"
    note = "note"
    visit = "visit"


class Direction(StrEnum):
    """`inbound`: the customer reached out; `outbound`: we did."""

    inbound = "inbound"
    outbound = "outbound"


class InteractionFields(InputSchema):
    channel: InteractionChannel | None = None
    direction: Direction | None = None
    occurred_at: UtcDatetime | None = Field(default=None, description="Default: now.")
    duration_seconds: Annotated[int, Field(ge=0, le=31 * 24 * 3600)] | None = None
    subject: ShortText | None = None
    summary: LongText | None = None
    contact_id: uuid.UUID | None = Field(
        default=None, description="With a contact, a company or both."
    )
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = Field(
        default=None,
        description="The user involved; default: the user the API key acts as, if any.",
    )
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    custom_fields: CustomFields | None = None


class InteractionCreate(InteractionFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "channel": "call",
                    "direction": "outbound",
                    "occurred_at": "2026-11-30T14:05:00Z",
                    "duration_seconds": 540,
                    "subject": "Renewal terms",
                    "summary": "Agreed to send a 3-year quote by Friday.",
                    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                    "external_id": "CALL-7781",
                }
            ]
        }
    }

    channel: InteractionChannel
    external_id: ExternalId | None = None


class InteractionUpdate(InteractionFields):
    """Only the fields sent change; `null` clears a field."""

    model_config = {"json_schema_extra": {"examples": [{"summary": "Quote sent."}]}}

    external_id: ExternalId | None = None


class InteractionUpsert(InteractionFields):
    """Upsert by the external id in the path (a message id, a call id): creates the interaction
    (`channel` and a contact or company are required then) or updates it as PATCH would."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "channel": "email",
                    "direction": "inbound",
                    "subject": "Re: quote",
                    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                }
            ]
        }
    }


class InteractionUpsertItem(InteractionUpsert):
    external_id: ExternalId


class InteractionBatchUpsert(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "external_id": "MSG-1",
                            "channel": "email",
                            "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                        }
                    ]
                }
            ]
        }
    }

    items: Annotated[list[InteractionUpsertItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class InteractionRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    channel: InteractionChannel
    direction: Direction | None
    occurred_at: datetime
    duration_seconds: int | None
    subject: str | None
    summary: str | None
    contact_id: uuid.UUID | None
    company_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    user_id: uuid.UUID | None
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int


class InteractionListParams(RecordListParams):
    channel: InteractionChannel | None = None
    direction: Direction | None = None
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    occurred_after: UtcDatetime | None = Field(default=None, description="occurred_at ≥ this.")
    occurred_before: UtcDatetime | None = Field(default=None, description="occurred_at < this.")


class InteractionPage(Page[InteractionRead]):
    pass
