import uuid
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from crm_api.core.batch import MAX_BATCH_ITEMS
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    NOT_BLANK,
    CustomFields,
    ExternalId,
    InputSchema,
    Label,
    ListParams,
    ReadSchema,
    RecordListParams,
    ShortText,
    Stripped,
    Tags,
    TimeZoneName,
    unique_tags,
)
from crm_api.tickets.sla import WEEKDAYS, TargetStatus, minute_of_day


class TicketStatus(StrEnum):
    """new → open ⇄ pending → resolved → closed; a resolved ticket may be reopened (open or
    pending); a closed ticket is final."""

    new = "new"
    open = "open"
    pending = "pending"
    resolved = "resolved"
    closed = "closed"


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Channel(StrEnum):
    email = "email"
    phone = "phone"
    chat = "chat"
    web = "web"
    social = "social"
    in_person = "in_person"


# Ticket descriptions and comments are messages: longer than other free text.
MessageText = Annotated[
    str, StringConstraints(min_length=1, max_length=50_000, pattern=NOT_BLANK), Stripped
]
TargetMinutes = Annotated[int, Field(ge=1, le=525_600, description="1 minute to 1 year.")]


# SLA policies


class SlaTarget(InputSchema):
    first_response_minutes: TargetMinutes | None = Field(
        default=None, description="Until the first public reply by a user."
    )
    resolution_minutes: TargetMinutes | None = Field(
        default=None, description="Until the ticket is resolved."
    )


class SlaTargets(InputSchema):
    """Per priority; a priority left out has no targets."""

    low: SlaTarget | None = None
    normal: SlaTarget | None = None
    high: SlaTarget | None = None
    urgent: SlaTarget | None = None


ClockTime = Annotated[
    str,
    StringConstraints(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"),
    Field(description="Local time `HH:MM`; `24:00` is the end of the day.", examples=["09:00"]),
]


class TimeWindow(InputSchema):
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> "TimeWindow":
        if minute_of_day(self.start) >= minute_of_day(self.end):
            raise ValueError("`end` must be after `start`")
        return self


DayWindows = Annotated[list[TimeWindow], Field(max_length=10)]


class BusinessHoursInput(InputSchema):
    """A weekly schedule in a time zone: only these hours count towards a target."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "timezone": "Europe/Berlin",
                    "monday": [{"start": "09:00", "end": "17:00"}],
                    "friday": [{"start": "09:00", "end": "15:00"}],
                }
            ]
        }
    }

    timezone: TimeZoneName = Field(examples=["Europe/Berlin"])
    monday: DayWindows = []
    tuesday: DayWindows = []
    wednesday: DayWindows = []
    thursday: DayWindows = []
    friday: DayWindows = []
    saturday: DayWindows = []
    sunday: DayWindows = []

    @model_validator(mode="after")
    def _sensible(self) -> "BusinessHoursInput":
        days = [getattr(self, day) for day in WEEKDAYS]
        if not any(days):
            raise ValueError("give business hours for at least one day")
        for name, windows in zip(WEEKDAYS, days, strict=True):
            spans = sorted((minute_of_day(w.start), minute_of_day(w.end)) for w in windows)
            if any(later[0] < earlier[1] for earlier, later in pairwise(spans)):
                raise ValueError(f"{name}: windows overlap")
        return self


class SlaPolicyFields(InputSchema):
    is_default: bool | None = Field(
        default=None,
        description="The policy of tickets created without `sla_policy_id`; making one policy "
        "the default unmakes the one before.",
    )
    targets: SlaTargets | None = None
    business_hours: BusinessHoursInput | None = Field(
        default=None, description="Null: targets count calendar time, around the clock."
    )


class SlaPolicyCreate(SlaPolicyFields):
    """A policy's targets apply to tickets created under it from then on, and to a ticket whose
    priority or policy changes; a ticket keeps the due times it was given otherwise."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Standard support",
                    "is_default": True,
                    "targets": {
                        "urgent": {"first_response_minutes": 60, "resolution_minutes": 480},
                        "normal": {"first_response_minutes": 480, "resolution_minutes": 2400},
                    },
                    "business_hours": {
                        "timezone": "Europe/Berlin",
                        "monday": [{"start": "09:00", "end": "17:00"}],
                        "tuesday": [{"start": "09:00", "end": "17:00"}],
                    },
                }
            ]
        }
    }

    name: ShortText
    external_id: ExternalId | None = None


class SlaPolicyUpdate(SlaPolicyFields):
    """Only the fields sent change. `targets` merge (RFC 7396: a target or priority sent as
    null goes); `business_hours` sent replace the schedule whole."""

    model_config = {
        "json_schema_extra": {"examples": [{"targets": {"urgent": {"first_response_minutes": 30}}}]}
    }

    name: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class SlaTargetRead(ReadSchema):
    first_response_minutes: int | None = None
    resolution_minutes: int | None = None


class SlaTargetsRead(ReadSchema):
    low: SlaTargetRead | None = None
    normal: SlaTargetRead | None = None
    high: SlaTargetRead | None = None
    urgent: SlaTargetRead | None = None


class TimeWindowRead(ReadSchema):
    start: str
    end: str


class BusinessHoursRead(ReadSchema):
    timezone: str
    monday: list[TimeWindowRead] = []
    tuesday: list[TimeWindowRead] = []
    wednesday: list[TimeWindowRead] = []
    thursday: list[TimeWindowRead] = []
    friday: list[TimeWindowRead] = []
    saturday: list[TimeWindowRead] = []
    sunday: list[TimeWindowRead] = []


class SlaPolicyRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    name: str
    is_default: bool
    targets: SlaTargetsRead
    business_hours: BusinessHoursRead | None
    created_at: datetime
    updated_at: datetime
    version: int


class SlaPolicyListParams(ListParams):
    pass


class SlaPolicyPage(Page[SlaPolicyRead]):
    pass


# Tickets


class TicketFields(InputSchema):
    description: MessageText | None = None
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    status: TicketStatus | None = Field(
        default=None, description="Default `new`; changes follow the status machine (409)."
    )
    priority: Priority | None = Field(default=None, description="Default `normal`.")
    channel: Channel | None = None
    category: Label | None = None
    assignee_id: uuid.UUID | None = Field(default=None, description="An active user.")
    team_id: uuid.UUID | None = None
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    custom_fields: CustomFields | None = None
    sla_policy_id: uuid.UUID | None = Field(
        default=None, description="Default: the workspace's default policy, if it has one."
    )


class TicketCreate(TicketFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "subject": "Invoice 1042 charged twice",
                    "description": "My card was charged twice for the November invoice.",
                    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                    "priority": "high",
                    "channel": "email",
                    "category": "billing",
                    "external_id": "ZD-88412",
                }
            ]
        }
    }

    subject: ShortText
    contact_id: uuid.UUID
    external_id: ExternalId | None = None


class TicketUpdate(TicketFields):
    """Only the fields sent change; `null` clears a field."""

    model_config = {"json_schema_extra": {"examples": [{"status": "pending"}]}}

    subject: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class TicketUpsert(TicketFields):
    """Upsert by the external id in the path: creates the ticket (`subject` and `contact_id`
    are required then) or updates it as PATCH would."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "subject": "Invoice 1042 charged twice",
                    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                    "status": "open",
                }
            ]
        }
    }

    subject: ShortText = None  # type: ignore[assignment]


class TicketUpsertItem(TicketUpsert):
    external_id: ExternalId


class TicketBatchUpsert(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "external_id": "ZD-88412",
                            "subject": "Invoice 1042 charged twice",
                            "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                        },
                        {"external_id": "ZD-88413", "status": "resolved"},
                    ]
                }
            ]
        }
    }

    items: Annotated[list[TicketUpsertItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class SlaClock(ReadSchema):
    due_at: datetime
    status: TargetStatus
    reached_at: datetime | None = Field(
        description="When the target was reached (first reply, resolution); null while it runs."
    )
    remaining_seconds: int | None = Field(
        description="Until `due_at`, in the policy's business time; negative once past due. "
        "Null once the target is reached."
    )


class TicketSla(ReadSchema):
    policy_id: uuid.UUID | None
    first_response: SlaClock | None = Field(description="Null: no first-response target.")
    resolution: SlaClock | None = Field(description="Null: no resolution target.")


class TicketCsat(ReadSchema):
    """The latest CSAT survey response about the ticket."""

    feedback_id: uuid.UUID
    score: int = Field(description="1 to 5.")
    comment: str | None
    responded_at: datetime


class TicketRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    subject: str
    description: str | None
    contact_id: uuid.UUID
    company_id: uuid.UUID | None
    status: TicketStatus
    priority: Priority
    channel: Channel | None
    category: str | None
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    tags: list[str]
    custom_fields: dict[str, Any]
    sla: TicketSla
    csat: TicketCsat | None = Field(description="Null until the customer rates the ticket.")
    first_responded_at: datetime | None = Field(description="The first public reply by a user.")
    resolved_at: datetime | None = Field(description="Cleared when the ticket is reopened.")
    closed_at: datetime | None
    reopened_count: int
    created_at: datetime
    updated_at: datetime
    version: int


class TicketListParams(RecordListParams):
    q: str | None = Field(
        default=None, min_length=1, max_length=200, description="Words in the subject."
    )
    status: list[TicketStatus] | None = Field(
        default=None, description="Any of these (repeat the parameter)."
    )
    priority: list[Priority] | None = Field(default=None, description="Any of these.")
    channel: Channel | None = None
    category: Label | None = None
    assignee_id: uuid.UUID | None = None
    unassigned: bool | None = Field(default=None, description="true: only tickets nobody has.")
    team_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    sla_breached: bool | None = Field(
        default=None,
        description="true: tickets with a breached target (as the worker or a late reply or "
        "resolution found it); false: those without.",
    )


class TicketPage(Page[TicketRead]):
    pass


class TicketStatusChangeRead(ReadSchema):
    id: uuid.UUID
    ticket_id: uuid.UUID
    from_status: TicketStatus | None = Field(description="Null for the ticket's creation.")
    to_status: TicketStatus
    changed_at: datetime = Field(validation_alias="created_at")
    api_key_id: uuid.UUID | None
    user_id: uuid.UUID | None = Field(description="The user that key acts as, if any.")


class TicketStatusChangePage(Page[TicketStatusChangeRead]):
    pass


class StatusHistoryParams(ListParams):
    pass


# Comments


class CommentKind(StrEnum):
    """`reply`: public, the customer sees it; `note`: internal, by a user only."""

    reply = "reply"
    note = "note"


class CommentCreate(InputSchema):
    """By a user or the contact; with neither, by the user the API key acts as. A user's first
    reply stamps `first_responded_at` (and opens a `new` ticket); the contact's reply opens a
    `pending` or `resolved` ticket again."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "body": "Sorry about that: the second charge is refunded today.",
                    "kind": "reply",
                    "author_user_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                }
            ]
        }
    }

    body: MessageText
    kind: CommentKind = CommentKind.reply
    author_user_id: uuid.UUID | None = None
    author_contact_id: uuid.UUID | None = None


class CommentRead(ReadSchema):
    id: uuid.UUID
    ticket_id: uuid.UUID
    kind: CommentKind
    body: str
    author_user_id: uuid.UUID | None
    author_contact_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    created_at: datetime


class CommentListParams(ListParams):
    kind: CommentKind | None = None


class CommentPage(Page[CommentRead]):
    pass
