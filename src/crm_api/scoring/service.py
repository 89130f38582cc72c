"""Lead scoring: the workspace's set-up, the models trained on its history, and the worker that
keeps every contact's score current (within seconds of a change to the contact, its company,
interactions, orders, feedback or tickets, by reading the event feed; and by a daily pass over
every contact, since interactions leave the rules' windows as days go by)."""

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import ColumnElement, false
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.repository import CONTACT_FILTERS, ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.documents import document_or_404, put_document
from crm_api.core.errors import Conflict, InvalidInput
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import condition_fields
from crm_api.core.patch import Changes
from crm_api.core.records import get_or_404, list_records
from crm_api.custom_fields.service import filter_condition
from crm_api.scoring.explain import Factor, FactorKind, rules_part, weighted, whole_points
from crm_api.scoring.models import LeadScoreModel, LeadScoring
from crm_api.scoring.regression import (
    L2_PENALTY,
    fit_logistic,
    logit_terms,
    probability_shares,
)
from crm_api.scoring.repository import (
    LOOKBACK_DAYS,
    MODEL_ID_SORT,
    MODEL_SORTS,
    LeadScoreModelRepository,
    LeadScoringRepository,
)
from crm_api.scoring.schemas import (
    FitRule,
    LeadScoreChange,
    LeadScoreModelListParams,
    LeadScoreModelRead,
    LeadScoreRead,
    LeadScoringInput,
    LeadScoringRead,
    stored_rules,
)
from crm_api.segments.metrics import contacts_named
from crm_api.webhooks.events import emit
from crm_api.webhooks.repository import EventRepository

# Contacts of closed deals a model needs of each outcome.
MIN_PER_OUTCOME = 5
PASS_EVERY = timedelta(days=1)
PASS_BATCH = 1_000
FEED_BATCH = 1_000
FEED_TYPES = ("contact.*", "company.*", "interaction.*", "order.*", "feedback.*", "ticket.*")
# Feed events that change nothing a score looks at.
UNSCORED = frozenset({"contact.lead_score_changed", "contact.birthday",
                      "contact.customer_anniversary", "company.created"})  # fmt: skip
# The model's own features besides the rules: (key, label).
ACTIVITY_FEATURES = (
    ("interactions_recent", "Interactions in the last 90 days"),
    ("days_since_last_interaction", "Days since the last interaction"),
    ("has_company", "Has a company"),
    ("has_phone", "Has a phone number"),
    ("has_email", "Has an email address"),
)


NO_SCORING = "This workspace has no lead scoring yet: PUT /v1/lead-scoring."


class NotEnoughHistory(Conflict):
    slug, title = "not-enough-history", "Not enough won and lost deals"


# The set-up


async def get_config(session: AsyncSession, principal: Principal) -> LeadScoring:
    return await document_or_404(session, LeadScoring, principal.workspace_id, NO_SCORING)


async def _conditions(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    rules: list[dict[str, Any]],
    *,
    strict: bool,
) -> list[ColumnElement[bool]]:
    """Each fit rule's filter as SQL. Stored rules whose filter no longer compiles (a custom
    field it names was deleted) select nobody; new ones (strict) are 422."""
    conditions = []
    for index, rule in enumerate(rules):
        loc = ("body", "fit_rules", index, "filter")
        filter = FitRule.model_validate(rule).filter
        try:
            if "metrics.lead_score" in condition_fields(filter):
                raise InvalidInput(loc, "A lead score cannot depend on itself.")
            where = await filter_condition(
                session, workspace_id, CustomFieldResource.contacts, filter, CONTACT_FILTERS, loc
            )
        except InvalidInput:
            if strict:
                raise
            where = [false()]
        conditions.append(where[0])
    return conditions


async def put_config(
    session: AsyncSession, principal: Principal, data: LeadScoringInput, if_match: str | None
) -> tuple[LeadScoring, bool]:
    """Create or replace the set-up; (set-up, whether it was created). A change starts a pass
    that scores every contact again."""
    data.check()
    workspace_id = principal.workspace_id
    values: dict[str, Any] = {
        "enabled": data.enabled,
        "fit_rules": stored_rules(data.fit_rules),
        "engagement_rules": stored_rules(data.engagement_rules),
        "use_model": data.use_model,
        "model_weight": data.model_weight,
    }
    await _conditions(session, workspace_id, values["fit_rules"], strict=True)
    feed = EventRepository(session)
    config, created, changes = await put_document(
        session, LeadScoring, workspace_id, values, if_match,
        event_sequence=await feed.last_sequence(workspace_id),
    )  # fmt: skip
    if not created and not changes:
        return config, False
    if "enabled" in changes and config.enabled:
        config.event_sequence = await feed.last_sequence(workspace_id)
    _start_pass(config)
    await session.flush()
    _announce_config(session, "created" if created else "updated", config, changes or None)
    return config, created


def _start_pass(config: LeadScoring) -> None:
    config.rescored_at = None
    config.rescore_after_id = None


def _announce_config(
    session: AsyncSession, action: str, config: LeadScoring, changes: Changes | None = None
) -> None:
    emit(session, config.workspace_id, f"lead_scoring.{action}",
         LeadScoringRead.model_validate(config), changes=changes,
         resource_id=config.workspace_id)  # fmt: skip


# Features: the same for training (as of when each deal was decided) and scoring (as of now)


@dataclass(frozen=True)
class Rules:
    """Fit and engagement rules, where their columns start in the feature rows."""

    fit: list[dict[str, Any]]
    engagement: list[dict[str, Any]]
    fit_at: int = 0
    engagement_at: int = 0


def _rule_factors(rules: Rules, row: RowMapping) -> list[Factor]:
    factors = []
    for index, rule in enumerate(rules.fit):
        if row[f"fit_{rules.fit_at + index}"]:
            factors.append(Factor(rule["key"], rule["label"], FactorKind.fit, rule["points"], 1))
    for index, rule in enumerate(rules.engagement):
        count = row[f"engagement_{rules.engagement_at + index}"]
        if count:
            cap = rule["max_points"]
            points = max(-cap, min(cap, count * rule["points_each"]))
            factors.append(Factor(rule["key"], rule["label"], FactorKind.engagement, points, count))
    return factors


def _feature_values(rules: Rules, row: RowMapping) -> list[tuple[float, float]]:
    """The model's inputs, each with the value shown beside it: (input, shown). Counts go in
    as log(1 + n), so the tenth call adds less than the first."""
    values = [
        (float(row[f"fit_{rules.fit_at + i}"]),) * 2 for i in range(len(rules.fit))
    ]  # fmt: skip
    counts = [row[f"engagement_{rules.engagement_at + i}"] for i in range(len(rules.engagement))]
    counts.append(row["interactions_recent"])
    values += [(math.log1p(n), float(n)) for n in counts]
    last = row["last_interaction_at"]
    days = LOOKBACK_DAYS if last is None else (row["as_of"] - last).total_seconds() / 86_400
    values.append((days, round(days, 1)))
    values += [(float(row[f]),) * 2 for f in ("has_company", "has_phone", "has_email")]
    return values


def _feature_names(rules: Rules) -> list[tuple[str, str]]:
    return [
        *((f"fit:{r['key']}", r["label"]) for r in rules.fit),
        *((f"engagement:{r['key']}", r["label"]) for r in rules.engagement),
        *ACTIVITY_FEATURES,
    ]


def _model_factors(model: LeadScoreModel, rules: Rules, row: RowMapping) -> list[Factor]:
    """The model's probability as factors: an average contact's, then each feature's share."""
    values = _feature_values(rules, row)
    features = model.features
    terms = logit_terms(
        [v[0] for v in values], [f["mean"] for f in features], [f["std"] for f in features],
        [f["weight"] for f in features],
    )  # fmt: skip
    base, shares = probability_shares(model.intercept, terms)
    return [
        Factor("baseline", "An average contact (model)", FactorKind.baseline, base),
        *(
            Factor(f["key"], f["label"], FactorKind.model, share, value[1])
            for f, share, value in zip(features, shares, values, strict=True)
        ),
    ]


# Scoring


async def _active_model(session: AsyncSession, config: LeadScoring) -> LeadScoreModel | None:
    if not config.use_model or config.model_id is None or config.model_weight == 0:
        return None
    return await LeadScoreModelRepository(session).get(config.workspace_id, config.model_id)


async def score_contacts(
    session: AsyncSession, config: LeadScoring, contact_ids: list[uuid.UUID], now: datetime
) -> int:
    """Score these contacts as of now (the deleted are left as they were); announce each score
    that changed. How many were scored."""
    if not contact_ids:
        return 0
    workspace_id = config.workspace_id
    model = await _active_model(session, config)
    own = Rules(config.fit_rules, config.engagement_rules)
    trained = Rules(
        model.fit_rules if model else [], model.engagement_rules if model else [],
        len(own.fit), len(own.engagement),
    )  # fmt: skip
    repository = LeadScoringRepository(session)
    conditions = await _conditions(session, workspace_id, own.fit + trained.fit, strict=False)
    rows = await repository.feature_rows(
        workspace_id, [(id, now) for id in contact_ids], conditions,
        own.engagement + trained.engagement,
    )  # fmt: skip
    before = await repository.scores_of(workspace_id, contact_ids)
    weight = config.model_weight if model else 0.0
    saved, changed = [], []
    for row in rows:
        _, factors = rules_part(_rule_factors(own, row))
        factors = weighted(factors, 1 - weight)
        if model is not None:
            factors += weighted(_model_factors(model, trained, row), weight * 100)
        score, shown = whole_points(factors)
        contact_id = row["contact_id"]
        saved.append({
            "workspace_id": workspace_id, "contact_id": contact_id, "lead_score": score,
            "lead_score_factors": shown, "lead_score_model_id": model.id if model else None,
            "lead_scored_at": now,
        })  # fmt: skip
        if before.get(contact_id) != score:
            changed.append((saved[-1], before.get(contact_id)))
    await repository.save_scores(saved)
    for values, previous in changed:
        data = LeadScoreChange(
            contact_id=values["contact_id"], score=values["lead_score"],
            factors=values["lead_score_factors"], model_id=values["lead_score_model_id"],
            scored_at=now, previous_score=previous,
        )  # fmt: skip
        emit(session, workspace_id, "contact.lead_score_changed", data,
             resource_id=values["contact_id"])  # fmt: skip
    return len(rows)


async def _changed_contacts(
    session: AsyncSession, config: LeadScoring, last_sequence: int
) -> set[uuid.UUID]:
    """The contacts the feed's next events are about; moves the set-up's place in the feed."""
    through = min(last_sequence, config.event_sequence + FEED_BATCH)
    events = await EventRepository(session).between(
        config.workspace_id, config.event_sequence, through, FEED_TYPES
    )
    config.event_sequence = through
    contact_ids: set[uuid.UUID] = set()
    company_ids: set[uuid.UUID] = set()
    for event in events:
        if event.type in UNSCORED:
            continue
        if event.type.startswith("company."):
            company_ids.add(uuid.UUID(str(event.resource_id)))
        else:
            contact_ids |= contacts_named(event.type, event.resource_id, event.data, event.changes)
    if company_ids:
        repository = LeadScoringRepository(session)
        contact_ids |= set(
            await repository.contacts_of_companies(config.workspace_id, sorted(company_ids))
        )
    return contact_ids


async def score_leads(session: AsyncSession, now: datetime, limit: int = 10) -> int:
    """The worker's round: for each set-up behind the feed or due a pass, score the contacts
    that changed and the pass's next page. How many set-ups moved on."""
    repository = LeadScoringRepository(session)
    due = await repository.configs_due(now - PASS_EVERY, limit)
    for config, last_sequence in due:
        contact_ids: set[uuid.UUID] = set()
        if last_sequence > config.event_sequence:
            contact_ids = await _changed_contacts(session, config, last_sequence)
        if config.rescored_at is None or config.rescored_at < now - PASS_EVERY:
            page = await repository.contacts_after(
                config.workspace_id, config.rescore_after_id, PASS_BATCH
            )
            contact_ids |= set(page)
            if len(page) < PASS_BATCH:
                config.rescored_at, config.rescore_after_id = now, None
            else:
                config.rescore_after_id = page[-1]
        await score_contacts(session, config, sorted(contact_ids), now)
    await session.flush()
    return len(due)


async def get_lead_score(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> LeadScoreRead:
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    metrics = await ContactRepository(session).metrics_of(principal.workspace_id, contact_id)
    if metrics is None or metrics.lead_scored_at is None:
        return LeadScoreRead(
            contact_id=contact_id, score=None, factors=[], model_id=None, scored_at=None
        )
    return LeadScoreRead(
        contact_id=contact_id, score=metrics.lead_score, factors=metrics.lead_score_factors or [],
        model_id=metrics.lead_score_model_id, scored_at=metrics.lead_scored_at,
    )  # fmt: skip


# Models


async def train_model(session: AsyncSession, principal: Principal) -> LeadScoreModel:
    """Fit won against lost over the contacts of closed deals, with the set-up's rules as
    features measured as of when each was decided; it scores from now on (a pass starts).
    Trainings of one workspace run one after another (the set-up's row lock)."""
    workspace_id = principal.workspace_id
    config = await document_or_404(session, LeadScoring, workspace_id, NO_SCORING, for_update=True)
    repository = LeadScoringRepository(session)
    targets = await repository.training_targets(workspace_id)
    won = sum(1 for _, is_won, _ in targets if is_won)
    lost = len(targets) - won
    if won < MIN_PER_OUTCOME or lost < MIN_PER_OUTCOME:
        raise NotEnoughHistory(
            f"A model needs the contacts of at least {MIN_PER_OUTCOME} won and "
            f"{MIN_PER_OUTCOME} lost deals; this workspace has {won} and {lost}.",
            won=won, lost=lost, needed=MIN_PER_OUTCOME,
        )  # fmt: skip
    rules = Rules(config.fit_rules, config.engagement_rules)
    conditions = await _conditions(session, workspace_id, rules.fit, strict=False)
    rows = await repository.feature_rows(
        workspace_id, [(id, as_of) for id, _, as_of in targets], conditions, rules.engagement
    )
    outcome = {id: is_won for id, is_won, _ in targets}
    names = _feature_names(rules)
    features = pl.DataFrame(
        [[value[0] for value in _feature_values(rules, row)] for row in rows],
        schema=[key for key, _ in names], orient="row",
    )  # fmt: skip
    label = pl.Series("won", [outcome[row["contact_id"]] for row in rows], dtype=pl.Int8)
    fitted = fit_logistic(features, label)
    model = LeadScoreModel(
        workspace_id=workspace_id,
        fit_rules=rules.fit,
        engagement_rules=rules.engagement,
        features=[
            {"key": key, "label": text, "mean": mean, "std": std, "weight": weight}
            for (key, text), mean, std, weight in zip(
                names, fitted.means, fitted.stds, fitted.weights, strict=True
            )
        ],
        intercept=fitted.intercept,
        l2_penalty=L2_PENALTY,
        samples=len(rows),
        won=int(label.sum()),
        lost=len(rows) - int(label.sum()),
        auc=fitted.auc,
        log_loss=fitted.log_loss,
        converged=fitted.converged,
        iterations=fitted.iterations,
        message=fitted.message,
    )
    LeadScoreModelRepository(session).add(model)
    await session.flush()
    config.model_id = model.id
    config.version += 1
    config.updated_at = model.created_at
    _start_pass(config)
    await session.flush()
    emit(
        session, workspace_id, "lead_score_model.created", LeadScoreModelRead.model_validate(model)
    )
    return model


async def get_model(session: AsyncSession, principal: Principal, id: uuid.UUID) -> LeadScoreModel:
    return await get_or_404(
        LeadScoreModelRepository(session), principal.workspace_id, id, "lead score model"
    )


async def list_models(
    session: AsyncSession, principal: Principal, params: LeadScoreModelListParams
) -> tuple[list[LeadScoreModel], str | None]:
    return await list_records(
        LeadScoreModelRepository(session), principal.workspace_id, params, [], MODEL_SORTS,
        MODEL_ID_SORT, default_sort="-created_at",
    )  # fmt: skip
