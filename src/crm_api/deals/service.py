import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import Conflict, InvalidInput, NotFound
from crm_api.core.etag import check_if_match
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import SearchParams, search_description
from crm_api.core.hooks import on_delete, on_merge
from crm_api.core.patch import Changes, assign
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_external_id_free,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
    relink,
    soft_delete,
)
from crm_api.core.writes import RecordWrites
from crm_api.custom_fields.service import search_records
from crm_api.deals.models import CLOSED_KINDS, Deal, DealContact, DealStageChange, Pipeline, Stage
from crm_api.deals.repository import (
    DEAL_FILTERS,
    DEAL_ID_SORT,
    DEAL_SORTS,
    PIPELINE_ID_SORT,
    PIPELINE_SORTS,
    STAGE_CHANGE_ID_SORT,
    STAGE_CHANGE_SORTS,
    DealRepository,
    DealStageChangeRepository,
    PipelineRepository,
    StageRepository,
)
from crm_api.deals.schemas import (
    DealFields,
    DealListParams,
    DealRead,
    Forecast,
    ForecastParams,
    ForecastRow,
    PipelineCreate,
    PipelineListParams,
    PipelineRead,
    PipelineUpdate,
    RelatedDealListParams,
    StageCreate,
    StageHistoryParams,
    StageKind,
    StageOrder,
    StageRead,
    StageUpdate,
)
from crm_api.users.service import ensure_assignable_owners
from crm_api.webhooks.events import emit

# Won and lost stages have a fixed probability.
CLOSED_PROBABILITY = {"won": 100, "lost": 0}


class NotEmpty(Conflict):
    slug, title = "not-empty", "Still holds deals"


# Pipelines and stages


def _announce_pipeline(
    session: AsyncSession, action: str, pipeline: Pipeline, changes: Changes | None = None
) -> None:
    data = PipelineRead.model_validate(pipeline)
    emit(session, pipeline.workspace_id, f"pipeline.{action}", data, changes=changes)


def _stage_snapshot(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [StageRead.model_validate(stage).model_dump(mode="json") for stage in pipeline.stages]


def _probability(kind: str, probability: int | None, loc: tuple[str | int, ...]) -> int:
    """Open stages need one; won and lost stages have theirs fixed."""
    if kind in CLOSED_PROBABILITY:
        fixed = CLOSED_PROBABILITY[kind]
        if probability not in (None, fixed):
            raise InvalidInput((*loc, "probability"), f"A {kind} stage's probability is {fixed}.")
        return fixed
    if probability is None:
        raise InvalidInput((*loc, "probability"), "An open stage needs a probability (0-100).")
    return probability


def _new_stage(
    pipeline: Pipeline, data: StageCreate, position: int, loc: tuple[str | int, ...]
) -> Stage:
    kind = str(data.kind or StageKind.open)
    return Stage(
        id=new_id(),
        workspace_id=pipeline.workspace_id,
        pipeline_id=pipeline.id,
        name=data.name,
        kind=kind,
        probability=_probability(kind, data.probability, loc),
        position=position,
    )


async def _reload_stages(session: AsyncSession, pipeline: Pipeline) -> None:
    await session.flush()
    await session.refresh(pipeline, ["stages"])


async def create_pipeline(
    session: AsyncSession, principal: Principal, data: PipelineCreate
) -> Pipeline:
    repository = PipelineRepository(session)
    await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "pipeline")
    pipeline = Pipeline(
        id=new_id(),
        workspace_id=principal.workspace_id,
        name=data.name,
        external_id=data.external_id,
    )
    stages = [
        _new_stage(pipeline, stage, position, ("body", "stages", position))
        for position, stage in enumerate(data.stages or [])
    ]
    repository.add(pipeline)
    await session.flush()
    session.add_all(stages)
    await _reload_stages(session, pipeline)
    _announce_pipeline(session, "created", pipeline)
    return pipeline


async def get_pipeline(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Pipeline:
    return await get_or_404(PipelineRepository(session), principal.workspace_id, id, "pipeline")


async def list_pipelines(
    session: AsyncSession, principal: Principal, params: PipelineListParams
) -> tuple[list[Pipeline], str | None]:
    return await list_records(
        PipelineRepository(session),
        principal.workspace_id,
        params,
        [],
        PIPELINE_SORTS,
        PIPELINE_ID_SORT,
    )


async def _lock_pipeline(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None = None
) -> Pipeline:
    """Every change to a pipeline or its stages holds the pipeline's row lock first."""
    return await get_or_404(
        PipelineRepository(session),
        principal.workspace_id,
        id,
        "pipeline",
        for_update=True,
        if_match=if_match,
    )


async def update_pipeline(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: PipelineUpdate,
    if_match: str | None,
) -> Pipeline:
    pipeline = await _lock_pipeline(session, principal, id, if_match)
    if "external_id" in data.model_fields_set and data.external_id != pipeline.external_id:
        await ensure_external_id_free(
            PipelineRepository(session), principal.workspace_id, data.external_id, "pipeline"
        )
    changes = apply_fields(pipeline, data, data.model_fields_set)
    bump_version(pipeline, changes)
    await _reload_stages(session, pipeline)
    if changes:
        _announce_pipeline(session, "updated", pipeline, changes)
    return pipeline


async def delete_pipeline(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    pipeline = await _lock_pipeline(session, principal, id, if_match)
    stages = await StageRepository(session).of_pipeline(principal.workspace_id, pipeline.id)
    held = await DealRepository(session).count_in_pipeline(principal.workspace_id, pipeline.id)
    if held:
        raise NotEmpty(
            f"The pipeline holds {held} deals; move or delete them first.", deal_count=held
        )
    soft_delete(pipeline)
    for stage in stages:
        soft_delete(stage)
    await _reload_stages(session, pipeline)
    _announce_pipeline(session, "deleted", pipeline)


async def _stages_changed(
    session: AsyncSession, pipeline: Pipeline, before: list[dict[str, Any]]
) -> None:
    await _reload_stages(session, pipeline)
    after = _stage_snapshot(pipeline)
    if after == before:
        return
    changes: Changes = {"stages": (before, after)}
    bump_version(pipeline, changes)
    await session.flush()
    _announce_pipeline(session, "updated", pipeline, changes)


def _renumber(stages: Sequence[Stage]) -> None:
    for position, stage in enumerate(stages):
        if stage.position != position:
            stage.position = position
            stage.version += 1
            stage.updated_at = datetime.now(UTC)


async def create_stage(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, data: StageCreate
) -> Stage:
    pipeline = await _lock_pipeline(session, principal, pipeline_id)
    before = _stage_snapshot(pipeline)
    stages = await StageRepository(session).of_pipeline(principal.workspace_id, pipeline.id)
    if len(stages) >= 50:
        raise InvalidInput(("body",), "A pipeline has at most 50 stages.")
    position = len(stages) if data.position is None else min(data.position, len(stages))
    stage = _new_stage(pipeline, data, position, ("body",))
    session.add(stage)
    _renumber([*stages[:position], stage, *stages[position:]])
    await _stages_changed(session, pipeline, before)
    return stage


async def get_stage(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, id: uuid.UUID
) -> Stage:
    stage = await StageRepository(session).get_in_pipeline(principal.workspace_id, pipeline_id, id)
    if stage is None:
        raise NotFound(f"No stage with id {id} in pipeline {pipeline_id}.")
    return stage


async def _lock_stage(
    session: AsyncSession,
    principal: Principal,
    pipeline: Pipeline,
    id: uuid.UUID,
    if_match: str | None,
) -> Stage:
    stage = await StageRepository(session).get_in_pipeline(
        principal.workspace_id, pipeline.id, id, lock="update"
    )
    if stage is None:
        raise NotFound(f"No stage with id {id} in pipeline {pipeline.id}.")
    check_if_match(if_match, stage.version)
    return stage


async def update_stage(
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    id: uuid.UUID,
    data: StageUpdate,
    if_match: str | None,
) -> Stage:
    pipeline = await _lock_pipeline(session, principal, pipeline_id)
    before = _stage_snapshot(pipeline)
    stage = await _lock_stage(session, principal, pipeline, id, if_match)
    kind = str(data.kind) if data.kind is not None else stage.kind
    if kind != stage.kind:
        held = await DealRepository(session).count_in_stage(principal.workspace_id, stage.id)
        if held:
            raise NotEmpty(
                f"The stage holds {held} deals; its kind cannot change.", deal_count=held
            )
    sent = data.probability if "probability" in data.model_fields_set else None
    keep = stage.probability if kind == stage.kind == "open" else None
    probability = _probability(kind, sent if sent is not None else keep, ("body",))
    changes = apply_fields(stage, data, data.model_fields_set - {"kind", "probability"})
    assign(stage, changes, "kind", kind)
    assign(stage, changes, "probability", probability)
    bump_version(stage, changes)
    await _stages_changed(session, pipeline, before)
    return stage


async def delete_stage(
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    id: uuid.UUID,
    if_match: str | None,
) -> None:
    pipeline = await _lock_pipeline(session, principal, pipeline_id)
    before = _stage_snapshot(pipeline)
    stage = await _lock_stage(session, principal, pipeline, id, if_match)
    held = await DealRepository(session).count_in_stage(principal.workspace_id, stage.id)
    if held:
        raise NotEmpty(f"The stage holds {held} deals; move them first.", deal_count=held)
    soft_delete(stage)
    _renumber([s for s in pipeline.stages if s.id != stage.id])
    await _stages_changed(session, pipeline, before)


async def reorder_stages(
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    data: StageOrder,
    if_match: str | None,
) -> Pipeline:
    pipeline = await _lock_pipeline(session, principal, pipeline_id, if_match)
    before = _stage_snapshot(pipeline)
    stages = {
        s.id: s
        for s in await StageRepository(session).of_pipeline(pipeline.workspace_id, pipeline.id)
    }
    if sorted(data.stage_ids) != sorted(stages):
        raise InvalidInput(
            ("body", "stage_ids"), "List every stage of the pipeline once, and no other."
        )
    _renumber([stages[id] for id in data.stage_ids])
    await _stages_changed(session, pipeline, before)
    return pipeline


# Deals


def _announce_deal(
    session: AsyncSession, action: str, deal: Deal, changes: Changes | None = None
) -> None:
    data = DealRead.model_validate(deal)
    emit(session, deal.workspace_id, f"deal.{action}", data, changes=changes)


async def _target_stage(
    session: AsyncSession, principal: Principal, deal: Deal | None, data: DealFields
) -> Stage | None:
    """The stage a write puts the deal in (None: it stays where it is). The stage is held with a
    share lock, so it cannot be deleted before this transaction ends."""
    sent = data.model_fields_set
    stages = StageRepository(session)
    if "pipeline_id" in sent and data.pipeline_id is None:
        raise InvalidInput(("body", "pipeline_id"), "A deal is always in a pipeline.")
    if "stage_id" in sent and data.stage_id is None:
        raise InvalidInput(("body", "stage_id"), "A deal is always in a stage.")
    if data.stage_id is not None:
        stage = await stages.get_any(principal.workspace_id, data.stage_id, lock="share")
        if stage is None:
            raise InvalidInput(("body", "stage_id"), f"No stage with id {data.stage_id}.")
        pipeline_id = data.pipeline_id or (deal.pipeline_id if deal else stage.pipeline_id)
        if stage.pipeline_id != pipeline_id:
            raise InvalidInput(
                ("body", "stage_id"),
                f"Stage {stage.id} belongs to pipeline {stage.pipeline_id}, not {pipeline_id}; "
                "to move the deal to that pipeline, send its pipeline_id too.",
            )
        return stage
    if deal is not None:
        if data.pipeline_id is None or data.pipeline_id == deal.pipeline_id:
            return None
        raise InvalidInput(
            ("body", "stage_id"), "Moving a deal to another pipeline needs the stage_id there."
        )
    chosen = data.pipeline_id or await PipelineRepository(session).default_id(
        principal.workspace_id
    )
    if chosen is None:
        raise InvalidInput(("body", "stage_id"), "Send stage_id: the workspace has no pipeline.")
    first = await stages.first_of(principal.workspace_id, chosen)
    if first is None:
        raise InvalidInput(
            ("body", "pipeline_id"), f"No pipeline with id {chosen}, or it has no stages."
        )
    return first


async def _check_references(
    session: AsyncSession, principal: Principal, deal: Deal | None, data: DealFields
) -> None:
    if data.owner_id is not None and (deal is None or data.owner_id != deal.owner_id):
        await ensure_assignable_owners(session, principal, [data.owner_id])
    if data.company_id is not None and (deal is None or data.company_id != deal.company_id):
        live = await CompanyRepository(session).live_ids(principal.workspace_id, [data.company_id])
        if data.company_id not in live:
            raise InvalidInput(("body", "company_id"), f"No company with id {data.company_id}.")
    if data.contact_ids:
        live = await ContactRepository(session).live_ids(principal.workspace_id, data.contact_ids)
        for index, contact_id in enumerate(data.contact_ids):
            if contact_id not in live:
                raise InvalidInput(
                    ("body", "contact_ids", index), f"No contact with id {contact_id}."
                )


def _set_contacts(deal: Deal, contact_ids: Sequence[uuid.UUID]) -> Changes:
    def link(contact_id: uuid.UUID) -> DealContact:
        return DealContact(workspace_id=deal.workspace_id, deal_id=deal.id, contact_id=contact_id)

    old = deal.contact_ids
    links = relink(deal.contacts, contact_ids, attrgetter("contact_id"), link)
    if links is None:
        return {}
    deal.contacts = links
    return {"contact_ids": (old, deal.contact_ids)}


def _move(deal: Deal, stage: Stage, changes: Changes, now: datetime) -> bool:
    """Put the deal in the stage; whether it moved."""
    if stage.id == deal.stage_id and stage.pipeline_id == deal.pipeline_id:
        return False
    assign(deal, changes, "pipeline_id", stage.pipeline_id)
    assign(deal, changes, "stage_id", stage.id)
    assign(deal, changes, "stage_entered_at", now)
    was_closed = deal.status in CLOSED_KINDS
    assign(deal, changes, "status", stage.kind)
    if stage.kind not in CLOSED_KINDS:
        assign(deal, changes, "closed_at", None)
    elif not was_closed or changes.get("status"):
        assign(deal, changes, "closed_at", now)
    return True


async def _apply(
    session: AsyncSession,
    principal: Principal,
    deal: Deal,
    data: DealFields,
    stage: Stage | None,
    now: datetime,
) -> tuple[Changes, bool]:
    """Write the sent fields and the move; (changes, whether the deal moved)."""
    fields = data.model_fields_set - {"pipeline_id", "stage_id", "contact_ids", "closed_at"}
    changes = apply_fields(deal, data, fields, {"amount": lambda v: Decimal(v) if v else None})
    if "contact_ids" in data.model_fields_set:
        changes |= _set_contacts(deal, data.contact_ids or [])
    moved = stage is not None and _move(deal, stage, changes, now)
    if data.closed_at is not None:
        if deal.status not in CLOSED_KINDS:
            raise InvalidInput(("body", "closed_at"), "Only a won or lost deal has closed_at.")
        assign(deal, changes, "closed_at", data.closed_at)
    if deal.amount is not None and deal.currency is None:
        raise InvalidInput(("body", "currency"), "An amount needs its currency.")
    principal.hold_to_own_records(deal, "owner_id")
    return changes, moved


def _history(principal: Principal, deal: Deal, changes: Changes, now: datetime) -> DealStageChange:
    from_pipeline = changes["pipeline_id"][0] if "pipeline_id" in changes else deal.pipeline_id
    return DealStageChange(
        id=new_id(),
        workspace_id=deal.workspace_id,
        deal_id=deal.id,
        from_pipeline_id=from_pipeline if "stage_id" in changes else None,
        from_stage_id=changes["stage_id"][0] if "stage_id" in changes else None,
        to_pipeline_id=deal.pipeline_id,
        to_stage_id=deal.stage_id,
        api_key_id=principal.api_key_id,
        user_id=principal.user_id,
        created_at=now,
    )


MOVE_FIELDS = ("pipeline_id", "stage_id", "status", "stage_entered_at", "closed_at")


def _announce_move(session: AsyncSession, deal: Deal, changes: Changes) -> None:
    moved = {field: changes[field] for field in MOVE_FIELDS if field in changes}
    _announce_deal(session, "stage_changed", deal, moved)
    if deal.status in CLOSED_KINDS:
        _announce_deal(session, deal.status, deal, moved)


async def _insert(
    session: AsyncSession, principal: Principal, data: DealFields, external_id: str | None
) -> Deal:
    if getattr(data, "name", None) is None:
        raise InvalidInput(("body", "name"), "`name` is required to create a deal.")
    now = datetime.now(UTC)
    stage = await _target_stage(session, principal, None, data)
    assert stage is not None
    await _check_references(session, principal, None, data)
    deal = Deal(
        id=new_id(),
        workspace_id=principal.workspace_id,
        external_id=external_id,
        tags=[],
        custom_fields={},
        contacts=[],
        status=stage.kind,
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        stage_entered_at=now,
    )
    if "owner_id" not in data.model_fields_set:
        deal.owner_id = principal.user_id
    if stage.kind in CLOSED_KINDS:
        deal.closed_at = now
    await _apply(session, principal, deal, data, None, now)
    DealRepository(session).add(deal)
    await session.flush()
    DealStageChangeRepository(session).add_all([_history(principal, deal, {}, now)])
    await session.flush()
    _announce_deal(session, "created", deal)
    return deal


async def _change(
    session: AsyncSession, principal: Principal, deal: Deal, data: DealFields
) -> Changes:
    now = datetime.now(UTC)
    stage = await _target_stage(session, principal, deal, data)
    await _check_references(session, principal, deal, data)
    changes, moved = await _apply(session, principal, deal, data, stage, now)
    bump_version(deal, changes)
    if moved:
        DealStageChangeRepository(session).add_all([_history(principal, deal, changes, now)])
    await session.flush()
    if changes:
        _announce_deal(session, "updated", deal, changes)
    if moved:
        _announce_move(session, deal, changes)
    return changes


WRITES = RecordWrites(
    DealRepository, "deal", "/v1/deals/batch/upsert", _insert, _change, _announce_deal
)
create_deal = WRITES.create
update_deal = WRITES.update
upsert_deal = WRITES.upsert
batch_upsert_deals = WRITES.batch_upsert
delete_deal = WRITES.delete


async def get_deal(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Deal:
    return await get_or_404(DealRepository(session), principal.workspace_id, id, "deal")


async def get_deal_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> Deal:
    return await get_by_external_id_or_404(
        DealRepository(session), principal.workspace_id, external_id, "deal"
    )


async def list_deals(
    session: AsyncSession, principal: Principal, params: DealListParams
) -> tuple[list[Deal], str | None]:
    repository = DealRepository(session)
    where = repository.list_filters(principal.workspace_id, params)
    return await list_records(
        repository, principal.workspace_id, params, where, DEAL_SORTS, DEAL_ID_SORT
    )


SEARCH_DESCRIPTION = search_description(DEAL_FILTERS)


async def search_deals(
    session: AsyncSession, principal: Principal, params: SearchParams
) -> tuple[list[Deal], str | None]:
    return await search_records(
        DealRepository(session),
        principal.workspace_id,
        params,
        CustomFieldResource.deals,
        DEAL_FILTERS,
        DEAL_SORTS,
        DEAL_ID_SORT,
    )


async def list_contact_deals(
    session: AsyncSession,
    principal: Principal,
    contact_id: uuid.UUID,
    params: RelatedDealListParams,
) -> tuple[list[Deal], str | None]:
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    scoped = DealListParams(**params.model_dump(exclude_unset=True), contact_id=contact_id)
    return await list_deals(session, principal, scoped)


async def list_company_deals(
    session: AsyncSession,
    principal: Principal,
    company_id: uuid.UUID,
    params: RelatedDealListParams,
) -> tuple[list[Deal], str | None]:
    await get_or_404(CompanyRepository(session), principal.workspace_id, company_id, "company")
    scoped = DealListParams(**params.model_dump(exclude_unset=True), company_id=company_id)
    return await list_deals(session, principal, scoped)


async def list_stage_history(
    session: AsyncSession, principal: Principal, deal_id: uuid.UUID, params: StageHistoryParams
) -> tuple[list[DealStageChange], str | None]:
    await get_or_404(DealRepository(session), principal.workspace_id, deal_id, "deal")
    repository = DealStageChangeRepository(session)
    return await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.of_deal(deal_id),
        STAGE_CHANGE_SORTS,
        STAGE_CHANGE_ID_SORT,
        default_sort="changed_at",
    )


async def forecast(session: AsyncSession, principal: Principal, params: ForecastParams) -> Forecast:
    if params.pipeline_id is not None:
        await get_pipeline(session, principal, params.pipeline_id)
    rows, unpriced = await DealRepository(session).forecast(principal.workspace_id, params)
    key = {"month": "period", "owner": "owner_id", "stage": "stage_id"}[params.group_by]
    for row in rows:
        row[key] = row.pop("key")
    return Forecast(
        pipeline_id=params.pipeline_id,
        group_by=params.group_by,
        rows=[ForecastRow.model_validate(row) for row in rows],
        deals_without_amount=unpriced,
    )


@on_delete("company")
async def _unlink_deleted_company(
    session: AsyncSession, workspace_id: uuid.UUID, company_id: uuid.UUID
) -> None:
    for deal in await DealRepository(session).unlink_company(workspace_id, company_id):
        _announce_deal(session, "updated", deal, {"company_id": (company_id, None)})


@on_delete("contact")
async def _drop_deleted_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> None:
    for deal in await DealRepository(session).remove_contact(workspace_id, contact_id):
        old = sorted([*deal.contact_ids, contact_id])
        _announce_deal(session, "updated", deal, {"contact_ids": (old, deal.contact_ids)})


@on_merge("contact", "deals")
async def _follow_merged_contacts(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    survivor_id: uuid.UUID,
) -> int:
    return await DealRepository(session).move_contacts(workspace_id, merged_ids, survivor_id)
