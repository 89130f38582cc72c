import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from crm_api.core.batch import MAX_BATCH_ITEMS
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    CustomFields,
    ExternalId,
    InputSchema,
    JsonInteger,
    LongText,
    ReadSchema,
    RecordListParams,
    Tags,
    UtcDatetime,
    unique_tags,
)


class FeedbackKind(StrEnum):
    """`nps`: 0-10, how likely the customer is to recommend you (9-10 promoters, 7-8 passives,
    0-6 detractors); `csat`: 1-5, how satisfied they were (with a ticket, say)."""

    nps = "nps"
    csat = "csat"


class SurveyChannel(StrEnum):
    email = "email"
    sms = "sms"
    web = "web"
    in_app = "in_app"
    phone = "phone"
    chat = "chat"


SCORE_RANGES = {FeedbackKind.nps: (0, 10), FeedbackKind.csat: (1, 5)}


def score_problem(kind: str, score: int) -> str | None:
    low, high = SCORE_RANGES[FeedbackKind(kind)]
    return None if low <= score <= high else f"A {kind} score is {low} to {high}."


Score = Annotated[int, Field(ge=0, le=10, description="NPS 0-10, CSAT 1-5."), JsonInteger]


class FeedbackFields(InputSchema):
    comment: LongText | None = None
    channel: SurveyChannel | None = None
    ticket_id: uuid.UUID | None = Field(
        default=None, description="The ticket asked about; a CSAT response shows on it."
    )
    responded_at: UtcDatetime | None = Field(default=None, description="Default: now.")
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    custom_fields: CustomFields | None = None


class FeedbackCreate(FeedbackFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "kind": "nps",
                    "score": 9,
                    "comment": "Support sorted it out in an hour.",
                    "channel": "email",
                    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                    "responded_at": "2026-11-30T09:12:00Z",
                    "external_id": "SURVEY-5521",
                }
            ]
        }
    }

    kind: FeedbackKind
    score: Score
    contact_id: uuid.UUID
    external_id: ExternalId | None = None

    @field_validator("score")
    @classmethod
    def _score_fits_kind(cls, score: int, info: ValidationInfo) -> int:
        kind = info.data.get("kind")  # absent when the kind itself was invalid
        if kind is not None and (problem := score_problem(kind, score)) is not None:
            raise ValueError(problem)
        return score


class FeedbackUpdate(FeedbackFields):
    """Only the fields sent change; `null` clears a field. The score must fit the kind."""

    model_config = {"json_schema_extra": {"examples": [{"comment": "Changed my mind: great."}]}}

    kind: FeedbackKind = None  # type: ignore[assignment]
    score: Score = None  # type: ignore[assignment]
    contact_id: uuid.UUID = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class FeedbackUpsert(FeedbackFields):
    """Upsert by the survey tool's response id in the path: creates the response (`kind`,
    `score` and `contact_id` are required then) or updates it as PATCH would."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "kind": "csat",
                    "score": 4,
                    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                }
            ]
        }
    }

    kind: FeedbackKind = None  # type: ignore[assignment]
    score: Score = None  # type: ignore[assignment]
    contact_id: uuid.UUID = None  # type: ignore[assignment]


class FeedbackUpsertItem(FeedbackUpsert):
    external_id: ExternalId


class FeedbackBatchUpsert(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "external_id": "SURVEY-5521",
                            "kind": "nps",
                            "score": 9,
                            "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                        }
                    ]
                }
            ]
        }
    }

    items: Annotated[list[FeedbackUpsertItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class FeedbackRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    kind: FeedbackKind
    score: int
    comment: str | None
    channel: SurveyChannel | None
    contact_id: uuid.UUID
    ticket_id: uuid.UUID | None
    responded_at: datetime
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int


class FeedbackListParams(RecordListParams):
    kind: FeedbackKind | None = None
    channel: SurveyChannel | None = None
    contact_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    min_score: Annotated[int, Field(ge=0, le=10)] | None = None
    max_score: Annotated[int, Field(ge=0, le=10)] | None = None
    responded_after: UtcDatetime | None = Field(default=None, description="responded_at ≥ this.")
    responded_before: UtcDatetime | None = Field(default=None, description="responded_at < this.")


class FeedbackPage(Page[FeedbackRead]):
    pass
