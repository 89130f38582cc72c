import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    InputSchema,
    ListParams,
    LongText,
    ReadSchema,
    UtcDatetime,
)
from crm_api.webhooks.catalog import EventTypePattern


def _known_patterns(patterns: str) -> str:
    for pattern in patterns.split(","):
        if pattern not in EventTypePattern._value2member_map_:
            raise ValueError(f"`{pattern}` is not an event type or pattern")
    return patterns


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2000, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"),
    Field(
        description="Where events are POSTed. HTTPS, on a public address (plain HTTP and "
        "loopback or private addresses only when the server allows insecure webhooks).",
        examples=["https://erp.example.com/hooks/crm"],
    ),
]
EventTypes = Annotated[
    list[EventTypePattern], Field(min_length=1, max_length=50), AfterValidator(_unique)
]

Fields = Annotated[
    list[FieldName],
    Field(
        max_length=50,
        description="Only updates that change one of these fields are sent (creates, deletes "
        "and other events always are). Empty: every update.",
        examples=[["lifecycle_stage", "owner_id"]],
    ),
    AfterValidator(_unique),
]


class WebhookEndpointCreate(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "url": "https://erp.example.com/hooks/crm",
                    "event_types": ["contact.*", "company.updated"],
                    "fields": ["lifecycle_stage", "owner_id"],
                    "description": "ERP customer sync",
                }
            ]
        }
    }

    url: WebhookUrl
    event_types: EventTypes
    fields: Fields | None = None
    description: LongText | None = None
    enabled: bool = Field(
        default=True,
        description="Default: true.",
        # Not shown as a JSON Schema default: openapi-typescript makes a property with a
        # default required in a component schema, request bodies included.
        json_schema_extra=_without_default,
    )


class WebhookEndpointUpdate(InputSchema):
    """Only the fields sent change. Enabling an endpoint clears its failure state."""

    model_config = {
        "json_schema_extra": {"examples": [{"enabled": True, "event_types": ["contact.*"]}]}
    }

    url: WebhookUrl = None  # type: ignore[assignment]
    event_types: EventTypes = None  # type: ignore[assignment]
    fields: Fields | None = None
    description: LongText | None = None
    enabled: bool = None  # type: ignore[assignment]


class WebhookEndpointRead(ReadSchema):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    fields: list[str]
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the endpoint was disabled, when the service disabled it."
    )
    failing_since: datetime | None = Field(
        description="First failure of the current run of failed attempts; null after a success."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookEndpointWithSecret(WebhookEndpointRead):
    secret: str = Field(
        description="The `whsec_…` signing secret. Shown on create and rotation only: store it."
    )


class WebhookEndpointPage(Page[WebhookEndpointRead]):
    pass


class WebhookEndpointListParams(ListParams):
    enabled: bool | None = None


class EventRead(ReadSchema):
    id: uuid.UUID = Field(description="Also the `webhook-id` of its deliveries.")
    type: str = Field(examples=["contact.updated"])
    timestamp: datetime = Field(validation_alias="occurred_at")
    sequence: int = Field(
        description="Strictly increasing per workspace, in commit order, without gaps."
    )
    resource_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="The resource as the API returned it then.")
    changes: dict[str, Any] | None = Field(
        description="On updates: `{field: {old, new}}` for every field that changed."
    )


class EventPage(Page[EventRead]):
    pass


class EventListParams(ListParams):
    type: (
        Annotated[
            str,
            StringConstraints(max_length=500),
            AfterValidator(_known_patterns),
            Field(
                description="Comma-separated event types or patterns (`contact.*`, `*.deleted`).",
                examples=["contact.*,company.deleted"],
            ),
        ]
        | None
    ) = None
    resource_id: uuid.UUID | None = Field(default=None, description="Events of one record.")
    after_sequence: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Events after this sequence: to poll, pass the last sequence you processed.",
    )
    occurred_after: UtcDatetime | None = Field(default=None, description="timestamp ≥ this.")
    occurred_before: UtcDatetime | None = Field(default=None, description="timestamp < this.")


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivering = "delivering"
    succeeded = "succeeded"
    failed = "failed"


class DeliveryAttemptRead(ReadSchema):
    attempted_at: datetime
    succeeded: bool
    response_status: int | None
    response_body: str | None = Field(description="The first 4 KiB of the response.")
    error: str | None = Field(description="Why the attempt failed, when there was no response.")
    duration_ms: int


class DeliveryRead(ReadSchema):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    event_sequence: int
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = Field(
        description="When it will be tried next (pending), or the worker's lease (delivering)."
    )
    last_response_status: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[DeliveryAttemptRead]


class DeliveryPage(Page[DeliveryRead]):
    pass


class WebhookTestSent(ReadSchema):
    event_id: uuid.UUID = Field(
        description="The `webhook.test` event; its delivery is listed "
        "under the endpoint's deliveries with this `event_id`."
    )
    endpoint_id: uuid.UUID


class WebhookRecover(InputSchema):
    """Which failed deliveries to send again: those created in [since, until)."""

    model_config = {"json_schema_extra": {"examples": [{"since": "2026-11-20T00:00:00Z"}]}}

    since: UtcDatetime
    until: UtcDatetime | None = Field(default=None, description="Default: now.")

    @model_validator(mode="after")
    def _ordered(self) -> "WebhookRecover":
        if self.until is not None and self.until <= self.since:
            raise ValueError("`until` must be after `since`")
        return self


class WebhookRecovered(ReadSchema):
    requeued: int = Field(description="Failed deliveries put back in the queue, due now.")


class DeliveryListParams(ListParams):
    status: DeliveryStatus | None = None
    event_type: str | None = Field(default=None, max_length=100)
    event_id: uuid.UUID | None = None
