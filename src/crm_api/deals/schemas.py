import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from crm_api.core.batch import MAX_BATCH_ITEMS
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    CurrencyCode,
    CustomFields,
    DecimalText,
    ExternalId,
    InputSchema,
    IsoDate,
    ListParams,
    MoneyAmount,
    OwnedRecordListParams,
    ReadSchema,
    ShortText,
    Tags,
    UtcDatetime,
    unique_tags,
)


class StageKind(StrEnum):
    """`open` stages hold deals in progress; a deal moved to a `won` or `lost` stage closes."""

    open = "open"
    won = "won"
    lost = "lost"


Probability = Annotated[
    int,
    Field(
        ge=0,
        le=100,
        description="Chance of winning a deal in this stage, in percent; weighs the forecast. "
        "Won stages are 100 and lost stages 0.",
    ),
]


class StageFields(InputSchema):
    probability: Probability | None = None


class StageCreate(StageFields):
    """A new stage: open stages need a probability."""

    model_config = {
        "json_schema_extra": {"examples": [{"name": "Proposal", "kind": "open", "probability": 60}]}
    }

    name: ShortText
    kind: StageKind | None = Field(default=None, description="Default `open`.")
    position: int | None = Field(
        default=None, ge=0, le=49, description="Where it goes, from 0; default last."
    )


class StageUpdate(StageFields):
    """Order is changed with `PUT /v1/pipelines/{pipeline_id}/stage-order`."""

    model_config = {"json_schema_extra": {"examples": [{"probability": 70}]}}

    name: ShortText = None  # type: ignore[assignment]
    kind: StageKind = Field(
        default=None,  # type: ignore[assignment]
        description="Only while the stage holds no deals (409 otherwise).",
    )


class StageRead(ReadSchema):
    id: uuid.UUID
    pipeline_id: uuid.UUID
    name: str
    position: int = Field(description="0 for the first stage.")
    probability: int
    kind: StageKind
    created_at: datetime
    updated_at: datetime
    version: int


class PipelineCreate(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "New business",
                    "stages": [
                        {"name": "Qualified", "probability": 20},
                        {"name": "Proposal", "probability": 60},
                        {"name": "Won", "kind": "won"},
                        {"name": "Lost", "kind": "lost"},
                    ],
                }
            ]
        }
    }

    name: ShortText
    stages: Annotated[list[StageCreate], Field(max_length=50)] | None = Field(
        default=None, description="Its stages, in order (`position` is ignored here)."
    )
    external_id: ExternalId | None = None


class PipelineUpdate(InputSchema):
    """Stages are changed through `/v1/pipelines/{pipeline_id}/stages`."""

    model_config = {"json_schema_extra": {"examples": [{"name": "Renewals"}]}}

    name: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class StageOrder(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "stage_ids": [
                        "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                        "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a11",
                    ]
                }
            ]
        }
    }

    stage_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50)] = Field(
        description="Every stage of the pipeline, once each, in the new order."
    )


class PipelineRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    name: str
    stages: list[StageRead] = Field(description="In order.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Bumped by every change to the pipeline or its stages.")


class PipelineListParams(ListParams):
    pass


class PipelinePage(Page[PipelineRead]):
    pass


ContactIds = Annotated[
    list[uuid.UUID], Field(max_length=100, description="The people involved; replaces the list.")
]


class DealFields(InputSchema):
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    amount: MoneyAmount | None = None
    currency: CurrencyCode | None = Field(default=None, description="Required with `amount`.")
    expected_close_date: IsoDate | None = None
    owner_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    contact_ids: ContactIds | None = None
    source: Annotated[ShortText, Field(max_length=100, examples=["referral"])] | None = None
    lost_reason: ShortText | None = None
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    custom_fields: CustomFields | None = None
    closed_at: UtcDatetime | None = Field(
        default=None,
        description="When a won or lost deal closed; stamped with the time of the move unless "
        "given (to import history). Only for a deal in a won or lost stage.",
    )


class DealCreate(DealFields):
    """A new deal goes to `stage_id`; with `pipeline_id` alone, to that pipeline's first stage;
    with neither, to the first stage of the default pipeline (the workspace's oldest). Without
    `owner_id`, a key acting as a user makes the deal that user's."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Acme: 200 seats",
                    "amount": "24000.00",
                    "currency": "EUR",
                    "expected_close_date": "2026-12-15",
                    "external_id": "ERP-OPP-881",
                }
            ]
        }
    }

    name: ShortText
    external_id: ExternalId | None = None


class DealUpdate(DealFields):
    """Only the fields sent change; `null` clears a field. Sending `stage_id` moves the deal
    (recorded in its stage history); a stage of another pipeline needs `pipeline_id` too."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"stage_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a11", "amount": "26000"}]
        }
    }

    name: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class DealUpsert(DealFields):
    """Upsert by the external id in the path: creates the deal (`name` and a stage or pipeline
    are required then) or updates it as PATCH would."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Acme: 200 seats",
                    "pipeline_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a09",
                    "amount": "24000.00",
                    "currency": "EUR",
                }
            ]
        }
    }

    name: ShortText = None  # type: ignore[assignment]


class DealUpsertItem(DealUpsert):
    external_id: ExternalId


class DealBatchUpsert(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "external_id": "ERP-OPP-881",
                            "name": "Acme: 200 seats",
                            "stage_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
                            "amount": "24000.00",
                            "currency": "EUR",
                        },
                        {"external_id": "ERP-OPP-882", "amount": "9000.00", "currency": "EUR"},
                    ]
                }
            ]
        }
    }

    items: Annotated[list[DealUpsertItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class DealRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    name: str
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    status: StageKind = Field(description="The kind of the deal's stage.")
    amount: DecimalText | None
    currency: str | None
    expected_close_date: date | None
    owner_id: uuid.UUID | None
    company_id: uuid.UUID | None
    contact_ids: list[uuid.UUID]
    source: str | None
    lost_reason: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    stage_entered_at: datetime
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class RelatedDealListParams(OwnedRecordListParams):
    """The filters of a contact's or company's deal list."""

    q: str | None = Field(
        default=None, min_length=1, max_length=200, description="Words in the name."
    )
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    status: StageKind | None = None
    currency: CurrencyCode | None = None
    closes_on_or_after: IsoDate | None = Field(
        default=None, description="expected_close_date ≥ this."
    )
    closes_before: IsoDate | None = Field(default=None, description="expected_close_date < this.")
    closed_after: UtcDatetime | None = Field(default=None, description="closed_at ≥ this.")
    closed_before: UtcDatetime | None = Field(default=None, description="closed_at < this.")


class DealListParams(RelatedDealListParams):
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = Field(default=None, description="Deals this contact is on.")


class DealPage(Page[DealRead]):
    pass


class DealStageChangeRead(ReadSchema):
    id: uuid.UUID
    deal_id: uuid.UUID
    from_pipeline_id: uuid.UUID | None = Field(description="Null for the deal's creation.")
    from_stage_id: uuid.UUID | None = Field(description="Null for the deal's creation.")
    to_pipeline_id: uuid.UUID
    to_stage_id: uuid.UUID
    changed_at: datetime = Field(validation_alias="created_at")
    api_key_id: uuid.UUID | None = Field(description="The key that made the move.")
    user_id: uuid.UUID | None = Field(description="The user that key acts as, if any.")


class DealStageChangePage(Page[DealStageChangeRead]):
    pass


class StageHistoryParams(ListParams):
    pass


class ForecastGrouping(StrEnum):
    month = "month"
    owner = "owner"
    stage = "stage"


class ForecastParams(InputSchema):
    pipeline_id: uuid.UUID | None = Field(default=None, description="Default: every pipeline.")
    group_by: ForecastGrouping = Field(
        default=ForecastGrouping.month,
        description="`month`: open deals by the month of expected_close_date, won and lost deals "
        "by the month (UTC) of closed_at; `owner`; `stage`.",
    )
    owner_id: uuid.UUID | None = None
    currency: CurrencyCode | None = None
    on_or_after: IsoDate | None = Field(
        default=None,
        description="Only deals whose date (expected_close_date if open, closed_at if closed) "
        "is on or after this day.",
    )
    before: IsoDate | None = Field(default=None, description="… and before this day.")


class ForecastRow(ReadSchema):
    period: str | None = Field(
        default=None, description="`YYYY-MM` (group_by=month); null: open deals without a date."
    )
    owner_id: uuid.UUID | None = Field(default=None, description="group_by=owner; null: no owner.")
    stage_id: uuid.UUID | None = Field(default=None, description="group_by=stage.")
    currency: str = Field(description="Amounts are never added across currencies.")
    open_count: int
    open_amount: DecimalText
    weighted_amount: DecimalText = Field(
        description="The sum over open deals of amount * stage probability / 100."
    )
    won_count: int
    won_amount: DecimalText
    lost_count: int
    lost_amount: DecimalText


class Forecast(ReadSchema):
    pipeline_id: uuid.UUID | None
    group_by: ForecastGrouping
    rows: list[ForecastRow] = Field(description="One per group and currency, in group order.")
    deals_without_amount: int = Field(description="Matching deals left out: they have no amount.")
