import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, EmailStr, Field

from crm_api.core.batch import MAX_BATCH_ITEMS
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    Address,
    CustomFields,
    ExternalId,
    InputSchema,
    IsoDate,
    OwnedRecordListParams,
    PhoneInput,
    ReadSchema,
    ShortText,
    Tags,
    unique_tags,
)


class LifecycleStage(StrEnum):
    subscriber = "subscriber"
    lead = "lead"
    qualified = "qualified"
    customer = "customer"
    churned = "churned"


class ConsentStatus(StrEnum):
    granted = "granted"
    denied = "denied"
    unknown = "unknown"


def _lower(value: str) -> str:
    return value.lower()


def _plausible_birthday(value: date) -> date:
    if not date(1900, 1, 1) <= value <= date.today():
        raise ValueError("must be between 1900-01-01 and today")
    return value


Email = Annotated[
    EmailStr,
    AfterValidator(_lower),
    Field(description="Stored lower-case; unique among the workspace's live contacts."),
]


class ConsentInput(InputSchema):
    """Set a channel's status; its `updated_at` is stamped when the status changes."""

    email: ConsentStatus | None = None
    sms: ConsentStatus | None = None


class ChannelConsent(ReadSchema):
    status: ConsentStatus
    updated_at: datetime | None


class Consent(ReadSchema):
    email: ChannelConsent
    sms: ChannelConsent


class ContactFields(InputSchema):
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    additional_emails: Annotated[list[Email], Field(max_length=20)] | None = None
    phone: PhoneInput | None = None
    additional_phones: Annotated[list[PhoneInput], Field(max_length=20)] | None = None
    address: Address | None = None
    birthday: Annotated[IsoDate, AfterValidator(_plausible_birthday)] | None = None
    lifecycle_stage: LifecycleStage | None = None
    source: Annotated[ShortText, Field(max_length=100, examples=["web_form"])] | None = None
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    consent: ConsentInput | None = None
    owner_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    referred_by_id: uuid.UUID | None = Field(
        default=None, description="The contact who referred them (loyalty referral rules)."
    )
    custom_fields: CustomFields | None = None


class ContactCreate(ContactFields):
    """A new contact: at least one of first_name, last_name, email or phone."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "first_name": "Lan",
                    "last_name": "Nguyễn",
                    "email": "lan.nguyen@example.com",
                    "phone": "+84 28 3822 1234",
                    "lifecycle_stage": "lead",
                    "tags": ["newsletter"],
                    "consent": {"email": "granted"},
                    "external_id": "ERP-C-5531",
                }
            ]
        }
    }

    external_id: ExternalId | None = None


class ContactUpdate(ContactFields):
    """Only the fields sent change; `null` clears a field; objects merge (RFC 7396)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "lifecycle_stage": "customer",
                    "consent": {"sms": "denied"},
                    "custom_fields": {"vip": True, "old_field": None},
                    "last_name": None,
                }
            ]
        }
    }

    external_id: ExternalId | None = None


class ContactUpsert(ContactFields):
    """Upsert by the external id in the path: creates the contact with these fields, or
    updates them."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "first_name": "Grace",
                    "last_name": "Hopper",
                    "email": "grace@example.com",
                    "lifecycle_stage": "customer",
                }
            ]
        }
    }


class ContactUpsertItem(ContactFields):
    external_id: ExternalId


class ContactBatchUpsert(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {"external_id": "ERP-1", "first_name": "Ada", "email": "ada@example.com"},
                        {"external_id": "ERP-2", "first_name": "Alan", "phone": "+44 20 7946 0958"},
                    ]
                }
            ]
        }
    }

    items: Annotated[list[ContactUpsertItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class ContactRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    additional_emails: list[str]
    phone: str | None
    additional_phones: list[str]
    address: Address | None
    birthday: date | None
    lifecycle_stage: LifecycleStage | None
    source: str | None
    tags: list[str]
    consent: Consent
    owner_id: uuid.UUID | None
    company_id: uuid.UUID | None
    referred_by_id: uuid.UUID | None
    custom_fields: dict[str, Any]
    merged_into_id: uuid.UUID | None = Field(
        description="Set on a contact merged into another (seen in its `contact.deleted` event); "
        "GET of its id leads there (301)."
    )
    erased_at: datetime | None = Field(
        description="When the person was erased (`POST /v1/contacts/{id}/erase`): their "
        "personal fields are empty, what they bought and answered is kept anonymised."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class ContactPage(Page[ContactRead]):
    pass


class MergeRule(StrEnum):
    survivor = "survivor"
    newest = "newest"


MERGEABLE_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "birthday",
    "lifecycle_stage",
    "source",
    "owner_id",
    "company_id",
    "external_id",
)
MergeableField = StrEnum("MergeableField", {name: name for name in MERGEABLE_FIELDS})  # type: ignore[misc]


class ContactMerge(InputSchema):
    """Merge other contacts into this one (the survivor). Needs the survivor's ETag as
    `If-Match`: a merge is not undone."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "merge_ids": ["0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a11"],
                    "rule": "survivor",
                    "fields": {"phone": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a11"},
                    "dry_run": True,
                }
            ]
        }
    }

    merge_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=10)] = Field(
        description="The contacts merged into this one; they become tombstones."
    )
    rule: MergeRule = Field(
        default=MergeRule.survivor,
        description="Whose value a field takes when several contacts have one: `survivor` (this "
        "contact's, else the first in `merge_ids` that has one) or `newest` (the most recently "
        "updated contact's). Emails, phones and tags are always kept from all of them: the "
        "ones not chosen as primary become additional; custom fields are merged by the same "
        "rule; consent per channel is the most recently given.",
    )
    fields: dict[MergeableField, uuid.UUID] = Field(
        default_factory=dict,
        description="Field → the contact (this one or one of `merge_ids`) whose value it takes.",
    )
    dry_run: bool = Field(
        default=False, description="Return the merged contact and what would move; change nothing."
    )


class MergeMoves(ReadSchema):
    deals: int
    feedback: int
    interactions: int
    loyalty_entries: int = Field(description="Loyalty points entries (badges go with them).")
    orders: int
    referrals: int = Field(description="Contacts they referred.")
    segments: int = Field(description="Static segments the survivor joined in their place.")
    ticket_comments: int
    tickets: int


class ContactMergeResult(ReadSchema):
    id: uuid.UUID = Field(description="The survivor's id.")
    dry_run: bool
    merged_ids: list[uuid.UUID]
    moved: MergeMoves = Field(description="Records of the merged contacts now the survivor's.")
    survivor: ContactRead


class DuplicateReason(StrEnum):
    email = "email"
    phone = "phone"
    name = "name"


class DuplicateGroup(ReadSchema):
    reason: DuplicateReason = Field(
        description="`email`: the same address once `+tags` (and Gmail's dots) are dropped; "
        "`phone`: the same number; `name`: similar names at the same company."
    )
    key: str = Field(description="What they share: the address, the number, or the two names.")
    score: float = Field(description="How likely they are one person, 0 to 1.")
    contacts: list[ContactRead]


class DuplicatePage(Page[DuplicateGroup]):
    pass


class DuplicateListParams(InputSchema):
    reason: DuplicateReason | None = None
    min_score: float = Field(default=0.6, ge=0.3, le=1, description="For `name`: least similarity.")
    limit: int = Field(default=50, ge=1, le=100, description="Groups per page, 1 to 100.")
    cursor: str | None = Field(
        default=None, max_length=2048, description="`next_cursor` of the previous page."
    )


class CompanyContactListParams(OwnedRecordListParams):
    """The filters of a company's contact list (the company is in the path)."""

    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Words found, accent- and case-insensitively, in names, emails, phones or "
        "the company's name; each word may be a fragment.",
    )
    email: Email | None = Field(default=None, description="Any of the contact's addresses.")
    lifecycle_stage: LifecycleStage | None = None


class ContactListParams(CompanyContactListParams):
    company_id: uuid.UUID | None = None


class Occasion(StrEnum):
    birthday = "birthday"
    customer_anniversary = "customer_anniversary"


class ContactOccasionRead(ContactRead):
    """The contact, on their birthday or the anniversary of their first order
    (`contact.birthday`, `contact.customer_anniversary`)."""

    occasion: Occasion
    occasion_on: date = Field(description="The day, in the workspace's time zone.")
    years: int | None = Field(
        description="Their age (birthday) or years as a customer (anniversary)."
    )
