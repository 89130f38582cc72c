import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from crm_api.contacts.schemas import ConsentStatus
from crm_api.core.filters import Filter
from crm_api.core.schemas import InputSchema, JsonInteger, Key, LongText, ReadSchema, ShortText
from crm_api.playbooks.templates import PLACEHOLDERS_DESCRIPTION


class MessageChannel(StrEnum):
    """Channels a message goes out on: each needs the contact's consent (`consent.<channel>`
    granted)."""

    email = "email"
    sms = "sms"


class PlaybookMessage(InputSchema):
    channels: list[MessageChannel] = Field(
        min_length=1,
        max_length=2,
        description="In order of preference: the first the contact granted consent on is used; "
        "none granted, no message is suggested.",
    )
    subject: ShortText | None = Field(
        default=None, description="For email. " + PLACEHOLDERS_DESCRIPTION
    )
    template: LongText = Field(description="The body. " + PLACEHOLDERS_DESCRIPTION)

    @model_validator(mode="after")
    def channels_once(self) -> Self:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("each channel at most once")
        return self


class PlaybookTask(InputSchema):
    title: ShortText = Field(description="For the contact's owner. " + PLACEHOLDERS_DESCRIPTION)
    due_in_days: Annotated[int, Field(ge=0, le=365), JsonInteger] = Field(
        default=1, description="Due this many days from today in the workspace's time zone."
    )


class Playbook(InputSchema):
    key: Key
    name: ShortText
    segment_id: uuid.UUID | None = Field(
        default=None, description="For the members of this segment; null: for every contact."
    )
    when: Filter | None = Field(
        default=None,
        description="And only for contacts this filter selects, in the filter language of "
        "`POST /v1/contacts/search`: `metrics.rfm_segment`, `metrics.p_alive`, "
        "`metrics.lead_score`, `metrics.open_ticket_count`, tags, custom fields, ….",
    )
    offer: ShortText | None = Field(default=None, description="What to offer them.")
    message: PlaybookMessage | None = None
    owner_task: PlaybookTask | None = None
    skip_with_open_tickets: bool = Field(
        default=True,
        description="Not while the contact has a ticket open (new, open or pending): no offers "
        "to someone waiting on support.",
    )
    active: bool = True

    @model_validator(mode="after")
    def does_something(self) -> Self:
        if self.offer is None and self.message is None and self.owner_task is None:
            raise ValueError("a playbook needs an offer, a message or an owner task")
        message = self.message
        if message and message.subject and MessageChannel.email not in message.channels:
            raise ValueError("a subject is for email messages")
        return self


class PlaybooksInput(InputSchema):
    """Every playbook, in priority order (first first); sent whole, it replaces the ones before."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "playbooks": [
                        {
                            "key": "win-back",
                            "name": "Win back slipping customers",
                            "when": {
                                "any": [
                                    {
                                        "field": "metrics.rfm_segment",
                                        "op": "in",
                                        "value": ["at_risk", "cannot_lose_them"],
                                    },
                                    {"field": "metrics.p_alive", "op": "lt", "value": 0.3},
                                ]
                            },
                            "offer": "15% off the next order",
                            "message": {
                                "channels": ["email", "sms"],
                                "subject": "We miss you, {{first_name|there}}",
                                "template": "Hi {{first_name|there}}, here is {{offer}}.",
                            },
                            "owner_task": {"title": "Call {{full_name}}", "due_in_days": 2},
                        }
                    ]
                }
            ]
        }
    }

    playbooks: Annotated[list[Playbook], Field(max_length=100)]


class PlaybooksRead(ReadSchema):
    playbooks: list[Playbook]
    created_at: datetime
    updated_at: datetime
    version: int


class SuggestedMessage(ReadSchema):
    channel: MessageChannel
    to: str = Field(description="The address or number it goes to.")
    subject: str | None
    body: str


class SuggestedTask(ReadSchema):
    title: str
    owner_id: uuid.UUID | None = Field(description="The contact's owner (null: it has none).")
    due_on: date


class NextAction(ReadSchema):
    playbook_key: str
    playbook_name: str
    reasons: list[str] = Field(description="Why it applies to this contact now.")
    offer: str | None
    message: SuggestedMessage | None = Field(
        description="On the first channel the contact consented to (and has an address for); "
        "null when there is none."
    )
    channels_without_consent: list[MessageChannel] = Field(
        description="The playbook's channels passed over: no consent granted, or no address."
    )
    owner_task: SuggestedTask | None


class HeldBackReason(StrEnum):
    open_tickets = "open_tickets"
    no_consent = "no_consent"


class HeldBack(ReadSchema):
    playbook_key: str
    reason: HeldBackReason = Field(
        description="`open_tickets`: the contact has a ticket open; `no_consent`: the playbook "
        "only sends a message and no channel of it is consented to."
    )


class ContactSignals(ReadSchema):
    segment_ids: list[uuid.UUID]
    rfm_segment: str | None
    p_alive: float | None
    lead_score: int | None
    open_ticket_count: int
    consent: dict[MessageChannel, ConsentStatus]


class NextActions(ReadSchema):
    contact_id: uuid.UUID
    signals: ContactSignals = Field(description="What the playbooks were matched on.")
    data: list[NextAction] = Field(description="In the playbooks' priority order.")
    held_back: list[HeldBack] = Field(
        description="Playbooks that match the contact but are not suggested now, and why."
    )
