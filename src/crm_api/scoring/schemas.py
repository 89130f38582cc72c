import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from crm_api.core.errors import InvalidInput
from crm_api.core.filters import Filter
from crm_api.core.pagination import Page
from crm_api.core.schemas import InputSchema, JsonInteger, Key, ListParams, ReadSchema, ShortText
from crm_api.interactions.schemas import Direction, InteractionChannel
from crm_api.scoring.explain import FactorKind

RulePoints = Annotated[int, Field(ge=-100, le=100), JsonInteger]


class FitRule(InputSchema):
    """Points for contacts a filter selects: who they are (fields, custom fields, company,
    consent, orders as `metrics.*`)."""

    key: Key
    label: ShortText = Field(description="How the factor is named beside a score.")
    points: RulePoints = Field(description="Added when the filter selects the contact; may be "
                               "negative (a competitor's domain, say).")  # fmt: skip
    filter: Filter = Field(
        description="The filter language of `POST /v1/contacts/search` (`metrics.lead_score` "
        "excepted)."
    )


class EngagementRule(InputSchema):
    """Points per interaction with the contact in the last `within_days` days, up to a cap:
    `points_each` 5, `max_points` 20 is 5 points a touch for the first four."""

    key: Key
    label: ShortText
    within_days: Annotated[int, Field(ge=1, le=3650), JsonInteger]
    points_each: RulePoints = Field(description="Per interaction; not 0.")
    max_points: Annotated[int, Field(ge=1, le=100), JsonInteger] = Field(
        description="The most (or, for negative points, the least) the rule adds."
    )
    channels: list[InteractionChannel] | None = Field(
        default=None, min_length=1, max_length=8, description="Interactions on these; null: any."
    )
    direction: Direction | None = Field(
        default=None, description="`inbound`: only those the customer started; null: either."
    )


class LeadScoringInput(InputSchema):
    """The whole set-up, replacing the one before. Every contact is scored again within minutes
    (those that change, within seconds)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "fit_rules": [
                        {
                            "key": "decision-maker",
                            "label": "Tagged decision maker",
                            "points": 20,
                            "filter": {
                                "field": "tags",
                                "op": "contains",
                                "value": "decision-maker",
                            },
                        },
                        {
                            "key": "target-industry",
                            "label": "Software company",
                            "points": 15,
                            "filter": {
                                "field": "company.industry",
                                "op": "eq",
                                "value": "Software",
                            },
                        },
                    ],
                    "engagement_rules": [
                        {
                            "key": "recent-touches",
                            "label": "Interactions in the last 30 days",
                            "within_days": 30,
                            "points_each": 5,
                            "max_points": 25,
                        }
                    ],
                    "model_weight": 0.5,
                }
            ]
        }
    }

    enabled: bool = Field(default=True, description="False: scores stay as they are.")
    fit_rules: Annotated[list[FitRule], Field(max_length=50)] = []
    engagement_rules: Annotated[list[EngagementRule], Field(max_length=20)] = []
    use_model: bool = Field(
        default=True,
        description="Blend in the latest model trained on your won and lost deals "
        "(`POST /v1/lead-scoring/models`), if there is one.",
    )
    model_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The model's share of the score: score = (1 - w) · rule points held to "
        "0..100 + w · 100 · P(won).",
    )

    def check(self) -> None:
        keys: set[str] = set()
        groups = [
            ("fit_rules", [rule.key for rule in self.fit_rules]),
            ("engagement_rules", [rule.key for rule in self.engagement_rules]),
        ]
        for group, rule_keys in groups:
            for index, key in enumerate(rule_keys):
                if key in keys:
                    raise InvalidInput(("body", group, index, "key"), "Another rule has this key.")
                keys.add(key)
        for index, engagement in enumerate(self.engagement_rules):
            if engagement.points_each == 0:
                raise InvalidInput(
                    ("body", "engagement_rules", index, "points_each"), "May not be 0."
                )


class LeadScoringRead(ReadSchema):
    enabled: bool
    fit_rules: list[FitRule]
    engagement_rules: list[EngagementRule]
    use_model: bool
    model_weight: float
    model_id: uuid.UUID | None = Field(description="The latest model trained (null: none yet).")
    rescored_at: datetime | None = Field(
        description="When the last pass over every contact finished (null: one is under way)."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class LeadScoreFactor(ReadSchema):
    key: str = Field(description="The rule's key, the model feature's name, or `limit`/`baseline`.")
    label: str
    kind: FactorKind = Field(
        description="`fit`/`engagement`: a rule's points; `limit`: what holding the rules' points "
        "to 0..100 took off; `baseline`: the model's score for an average contact; `model`: a "
        "feature's push above or below it."
    )
    contribution: int = Field(description="Whole points; the factors add up to the score.")
    value: float | None = Field(
        description="What was measured: interactions counted, days since the last one, 1/0."
    )


class LeadScoreRead(ReadSchema):
    contact_id: uuid.UUID
    score: int | None = Field(description="0 to 100; null until the contact is first scored.")
    factors: list[LeadScoreFactor] = Field(
        description="Largest first; their contributions sum to the score."
    )
    model_id: uuid.UUID | None = Field(description="The model that had a share in it, if any.")
    scored_at: datetime | None


class LeadScoreChange(LeadScoreRead):
    """The data of `contact.lead_score_changed`."""

    previous_score: int | None


class ModelFeatureRead(ReadSchema):
    key: str
    label: str
    weight: float = Field(
        description="Change in the log-odds of winning per standard deviation of the feature."
    )
    mean: float
    std: float


class LeadScoreModelRead(ReadSchema):
    id: uuid.UUID
    samples: int = Field(description="Contacts of closed deals it was trained on.")
    won: int = Field(description="Of them, contacts with a won deal (the rest only lost).")
    lost: int
    features: list[ModelFeatureRead]
    intercept: float
    l2_penalty: float
    auc: float | None = Field(
        description="Area under the ROC curve on the training contacts (0.5: no better than "
        "chance)."
    )
    log_loss: float = Field(description="Mean log loss on the training contacts.")
    converged: bool
    iterations: int
    message: str | None
    created_at: datetime


class LeadScoreModelListParams(ListParams):
    pass


class LeadScoreModelPage(Page[LeadScoreModelRead]):
    pass


def stored_rules(rules: list[Any]) -> list[dict[str, Any]]:
    return [rule.model_dump(mode="json", exclude_none=True) for rule in rules]
