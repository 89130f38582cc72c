import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, model_validator

from crm_api.core.errors import InvalidInput
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    CurrencyCode,
    InputSchema,
    JsonInteger,
    Key,
    ListParams,
    LongText,
    ReadSchema,
    ShortText,
)
from crm_api.feedback.schemas import FeedbackKind

MAX_POINTS = 1_000_000_000
Points = Annotated[int, Field(ge=1, le=MAX_POINTS), JsonInteger]
PointsPerUnit = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,6}([.][0-9]{1,4})?$"),
    Field(description="Points per unit of the order's currency, a decimal string; the product "
    "is rounded down.", examples=["1"]),
]  # fmt: skip


class Trigger(StrEnum):
    """What earns: an order becoming paid (points per currency unit and/or fixed), a survey
    answer given, the contact's profile complete, a new contact naming them `referred_by_id`."""

    order_paid = "order_paid"
    feedback_given = "feedback_given"
    profile_completed = "profile_completed"
    referral = "referral"


class ProfileField(StrEnum):
    first_name = "first_name"
    last_name = "last_name"
    email = "email"
    phone = "phone"
    address = "address"
    birthday = "birthday"
    company_id = "company_id"


DEFAULT_PROFILE_FIELDS = ("first_name", "last_name", "email", "phone", "birthday")


class BadgeCriterion(StrEnum):
    lifetime_points = "lifetime_points"
    paid_orders = "paid_orders"
    feedback_given = "feedback_given"
    referrals = "referrals"


class EntryKind(StrEnum):
    earn = "earn"
    redeem = "redeem"
    reverse = "reverse"
    expire = "expire"
    adjust = "adjust"


class EarningRule(InputSchema):
    key: Key
    name: ShortText
    trigger: Trigger
    points: Annotated[int, Field(ge=0, le=1_000_000), JsonInteger] = Field(
        default=0, description="Fixed points per occurrence (for orders: besides the per-unit)."
    )
    points_per_unit: PointsPerUnit | None = Field(default=None, description="`order_paid` only.")
    currency: CurrencyCode | None = Field(
        default=None, description="`order_paid` only: orders in this currency; null: any."
    )
    feedback_kind: FeedbackKind | None = Field(
        default=None, description="`feedback_given` only: answers of this kind; null: any."
    )
    profile_fields: list[ProfileField] | None = Field(
        default=None,
        max_length=7,
        description="`profile_completed` only: the fields that must all be filled. Default "
        f"{', '.join(DEFAULT_PROFILE_FIELDS)}.",
    )
    active: bool = True

    @model_validator(mode="after")
    def fits_trigger(self) -> Self:
        only = {
            "points_per_unit": Trigger.order_paid,
            "currency": Trigger.order_paid,
            "feedback_kind": Trigger.feedback_given,
            "profile_fields": Trigger.profile_completed,
        }
        for field, trigger in only.items():
            if getattr(self, field) is not None and self.trigger is not trigger:
                raise ValueError(f"`{field}` is for `{trigger}` rules only")
        if self.points == 0 and not Decimal(self.points_per_unit or "0"):
            raise ValueError("a rule must award points: `points` or `points_per_unit`")
        return self


class Tier(InputSchema):
    key: Key
    name: ShortText
    min_points: Annotated[int, Field(ge=0, le=MAX_POINTS), JsonInteger] = Field(
        description="Points earned within the tier window that reach this tier."
    )


class Badge(InputSchema):
    key: Key
    name: ShortText
    description: LongText | None = None
    criterion: BadgeCriterion = Field(
        description="What is counted: points earned over all time, paid orders, survey answers "
        "given, or contacts referred."
    )
    threshold: Points = Field(description="The count that earns the badge.")


def _unique(items: list[Any], field: str, loc: str) -> None:
    seen: set[Any] = set()
    for index, item in enumerate(items):
        value = getattr(item, field)
        if value in seen:
            raise InvalidInput(("body", loc, index, field), f"Another one has {field} {value!r}.")
        seen.add(value)


class LoyaltyProgramInput(InputSchema):
    """The whole program: sent whole, it replaces the one before (rules, tiers and badges are
    lists in it). Earning starts with the events after the program is first stored."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Rewards",
                    "points_expire_after_days": 365,
                    "tier_window_days": 365,
                    "rules": [
                        {
                            "key": "orders",
                            "name": "1 point per euro",
                            "trigger": "order_paid",
                            "points_per_unit": "1",
                            "currency": "EUR",
                        },
                        {
                            "key": "feedback",
                            "name": "Tell us",
                            "trigger": "feedback_given",
                            "points": 50,
                        },
                    ],
                    "tiers": [
                        {"key": "silver", "name": "Silver", "min_points": 500},
                        {"key": "gold", "name": "Gold", "min_points": 2000},
                    ],
                    "badges": [
                        {
                            "key": "regular",
                            "name": "Regular",
                            "criterion": "paid_orders",
                            "threshold": 5,
                        }
                    ],
                }
            ]
        }
    }

    name: ShortText
    enabled: bool = Field(default=True, description="False: nothing earns until it is again.")
    points_expire_after_days: Annotated[int, Field(ge=1, le=3650), JsonInteger] | None = Field(
        default=None,
        description="Points expire this many days after they are earned, oldest spent first; "
        "null: never.",
    )
    tier_window_days: Annotated[int, Field(ge=1, le=3650), JsonInteger] = Field(
        default=365, description="Tiers go by the points earned in this many days up to now."
    )
    rules: Annotated[list[EarningRule], Field(max_length=50)] = []
    tiers: Annotated[list[Tier], Field(max_length=20)] = []
    badges: Annotated[list[Badge], Field(max_length=50)] = []

    def check_unique(self) -> None:
        _unique(self.rules, "key", "rules")
        _unique(self.tiers, "key", "tiers")
        _unique(self.tiers, "min_points", "tiers")
        _unique(self.badges, "key", "badges")


class EarningRuleRead(ReadSchema):
    key: str
    name: str
    trigger: Trigger
    points: int
    points_per_unit: str | None
    currency: str | None
    feedback_kind: FeedbackKind | None
    profile_fields: list[ProfileField] | None
    active: bool


class TierRead(ReadSchema):
    key: str
    name: str
    min_points: int


class BadgeRead(ReadSchema):
    key: str
    name: str
    description: str | None
    criterion: BadgeCriterion
    threshold: int


class LoyaltyProgramRead(ReadSchema):
    name: str
    enabled: bool
    points_expire_after_days: int | None
    tier_window_days: int
    rules: list[EarningRuleRead]
    tiers: list[TierRead] = Field(description="Lowest first.")
    badges: list[BadgeRead]
    created_at: datetime
    updated_at: datetime
    version: int


class NextTier(TierRead):
    points_needed: int = Field(description="More points to earn within the window to reach it.")


class Expiry(ReadSchema):
    expires_at: datetime
    points: int = Field(description="Points that expire then unless spent before.")


class BadgeAwardRead(ReadSchema):
    contact_id: uuid.UUID
    key: str = Field(validation_alias="badge_key")
    name: str
    awarded_at: datetime


class LoyaltyAccountRead(ReadSchema):
    contact_id: uuid.UUID
    balance: int = Field(description="Points to spend: the sum of the ledger's entries.")
    lifetime_points: int = Field(
        description="Points earned over all time, net of reversals and adjustments."
    )
    tier_points: int = Field(description="Points earned within the tier window up to now.")
    tier: TierRead | None
    tier_changed_at: datetime | None
    next_tier: NextTier | None
    next_expiry: Expiry | None
    badges: list[BadgeAwardRead]


class LoyaltyEntryRead(ReadSchema):
    id: uuid.UUID
    contact_id: uuid.UUID
    kind: EntryKind
    points: int = Field(description="Signed: positive adds to the balance.")
    balance_after: int
    reason: str
    reference: str | None
    rule_key: str | None
    source_type: str | None = Field(description="`order`, `feedback` or `contact`.")
    source_id: uuid.UUID | None
    reverses_id: uuid.UUID | None
    earned_at: datetime | None
    expires_at: datetime | None
    api_key_id: uuid.UUID | None
    user_id: uuid.UUID | None
    created_at: datetime


class LoyaltyEntryPage(Page[LoyaltyEntryRead]):
    pass


class LoyaltyEntryListParams(ListParams):
    kind: EntryKind | None = None


Reference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    Field(description="Your id for what it was for (a reward, an order); shown on the entry."),
]


class RedemptionCreate(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [{"points": 500, "reason": "€5 voucher", "reference": "voucher-8812"}]
        }
    }

    points: Points
    reason: ShortText = "Redeemed"
    reference: Reference | None = None


class AdjustmentCreate(InputSchema):
    model_config = {
        "json_schema_extra": {"examples": [{"points": 200, "reason": "Sorry for the delay"}]}
    }

    points: Annotated[int, Field(ge=-MAX_POINTS, le=MAX_POINTS), JsonInteger] = Field(
        description="Signed, not 0: added to (or taken from) the balance; counts as earned."
    )
    reason: ShortText
    reference: Reference | None = None

    @model_validator(mode="after")
    def not_zero(self) -> Self:
        if self.points == 0:
            raise ValueError("`points` must not be 0")
        return self


class LeaderboardParams(InputSchema):
    days: Annotated[int, Field(ge=1, le=3650)] | None = Field(
        default=None, description="Rank by points earned in this many days; default: all time."
    )
    tier: Key | None = Field(default=None, description="Only contacts in this tier.")
    limit: int = Field(default=10, ge=1, le=100)


class LeaderboardRow(ReadSchema):
    rank: int = Field(description="1 is the most; equal points share a rank (1, 2, 2, 4).")
    contact_id: uuid.UUID
    first_name: str | None
    last_name: str | None
    points: int
    tier_key: str | None


class Leaderboard(ReadSchema):
    since: datetime | None
    data: list[LeaderboardRow]
