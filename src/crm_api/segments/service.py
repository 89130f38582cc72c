import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.models import Contact
from crm_api.contacts.repository import (
    CONTACT_FILTERS,
    CONTACT_ID_SORT,
    CONTACT_SORTS,
    ContactRepository,
)
from crm_api.core.auth import Principal
from crm_api.core.errors import Conflict, InvalidInput
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import FilterAll, FilterAny, FilterCondition
from crm_api.core.hooks import on_merge
from crm_api.core.patch import Changes, assign
from crm_api.core.records import bump_version, get_or_404, list_records, soft_delete
from crm_api.core.schemas import ListParams
from crm_api.custom_fields.service import filter_condition
from crm_api.segments.models import Segment
from crm_api.segments.repository import (
    SEGMENT_ID_SORT,
    SEGMENT_SORTS,
    SegmentRepository,
    live_contacts,
)
from crm_api.segments.schemas import (
    FILTER,
    SegmentCreate,
    SegmentKind,
    SegmentListParams,
    SegmentMembersChange,
    SegmentMembership,
    SegmentPreview,
    SegmentRead,
    SegmentUpdate,
)
from crm_api.webhooks.events import emit

# How many queued contacts the worker looks at in one transaction.
STALE_BATCH = 1_000
Filter = FilterCondition | FilterAll | FilterAny


def _announce(
    session: AsyncSession, action: str, segment: Segment, changes: Changes | None = None
) -> None:
    emit(session, segment.workspace_id, f"segment.{action}", SegmentRead.model_validate(segment),
         changes=changes)  # fmt: skip


def _announce_members(
    session: AsyncSession, segment: Segment, joined: Sequence[uuid.UUID], left: Sequence[uuid.UUID]
) -> None:
    for action, contact_ids in (("member_added", joined), ("member_removed", left)):
        for contact_id in contact_ids:
            data = SegmentMembership(
                segment_id=segment.id, segment_name=segment.name, contact_id=contact_id
            )
            emit(session, segment.workspace_id, f"segment.{action}", data)


async def _condition(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    filter: Filter,
    loc: tuple[str | int, ...] = ("body", "filter"),
) -> list[ColumnElement[bool]]:
    return await filter_condition(
        session, workspace_id, CustomFieldResource.contacts, filter, CONTACT_FILTERS, loc
    )


def _stored(filter: Filter) -> dict[str, Any]:
    return FILTER.dump_python(filter, mode="json", exclude_none=True)  # type: ignore[no-any-return]


async def _rebuild(session: AsyncSession, segment: Segment, *, announce: bool) -> None:
    """Evaluate a dynamic segment over every contact; its members become exactly those the
    filter selects. A filter that no longer compiles leaves the members and says why."""
    assert segment.filter is not None
    try:
        where = await _condition(
            session, segment.workspace_id, FILTER.validate_python(segment.filter)
        )
    except InvalidInput as error:
        segment.refresh_error = error.detail
        return
    joined, left = await SegmentRepository(session).rebuild(segment, where)
    segment.member_count += len(joined) - len(left)
    segment.refreshed_at = datetime.now(UTC)
    segment.refresh_error = None
    if announce:
        _announce_members(session, segment, joined, left)


async def _live_contact_ids(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The ids, once each, when all name live contacts; 422 naming the first that does not."""
    live = await ContactRepository(session).live_ids(workspace_id, contact_ids)
    for index, contact_id in enumerate(contact_ids):
        if contact_id not in live:
            raise InvalidInput(("body", "contact_ids", index), f"No contact with id {contact_id}.")
    return sorted(set(contact_ids))


async def create_segment(
    session: AsyncSession, principal: Principal, data: SegmentCreate
) -> Segment:
    """The members a segment starts with are not announced one by one (`segment.created` gives
    their count); every later change is."""
    dynamic = data.kind is SegmentKind.dynamic
    if dynamic and data.filter is None:
        raise InvalidInput(("body", "filter"), "A dynamic segment needs a filter.")
    if dynamic and data.contact_ids is not None:
        raise InvalidInput(
            ("body", "contact_ids"), "A dynamic segment's members follow its filter."
        )
    if not dynamic and data.filter is not None:
        raise InvalidInput(("body", "filter"), "A static segment has no filter.")
    if data.filter is not None:
        await _condition(session, principal.workspace_id, data.filter)  # 422 before anything
    segment = Segment(
        workspace_id=principal.workspace_id,
        name=data.name,
        description=data.description,
        kind=data.kind.value,
        filter=_stored(data.filter) if data.filter is not None else None,
        member_count=0,
    )
    repository = SegmentRepository(session)
    repository.add(segment)
    await session.flush()
    if dynamic:
        await _rebuild(session, segment, announce=False)
    elif data.contact_ids:
        ids = await _live_contact_ids(session, principal.workspace_id, data.contact_ids)
        segment.member_count = len(await repository.add_members(segment, ids))
    await session.flush()
    _announce(session, "created", segment)
    return segment


async def get_segment(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Segment:
    return await get_or_404(SegmentRepository(session), principal.workspace_id, id, "segment")


async def list_segments(
    session: AsyncSession, principal: Principal, params: SegmentListParams
) -> tuple[list[Segment], str | None]:
    where = [] if params.kind is None else [Segment.kind == params.kind.value]
    return await list_records(
        SegmentRepository(session), principal.workspace_id, params, where, SEGMENT_SORTS,
        SEGMENT_ID_SORT,
    )  # fmt: skip


async def _locked(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None = None
) -> Segment:
    return await get_or_404(
        SegmentRepository(session), principal.workspace_id, id, "segment", for_update=True,
        if_match=if_match,
    )  # fmt: skip


async def update_segment(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: SegmentUpdate,
    if_match: str | None,
) -> Segment:
    segment = await _locked(session, principal, id, if_match)
    sent = data.model_fields_set
    for field in ("name", "filter"):
        if field in sent and getattr(data, field) is None:
            raise InvalidInput(("body", field), "May not be null.")
    if "filter" in sent and segment.kind == SegmentKind.static:
        raise InvalidInput(("body", "filter"), "A static segment has no filter.")
    changes: Changes = {}
    for field in ("name", "description"):
        if field in sent:
            assign(segment, changes, field, getattr(data, field))
    if "filter" in sent:
        await _condition(session, principal.workspace_id, data.filter)
        assign(segment, changes, "filter", _stored(data.filter))
    bump_version(segment, changes)
    await session.flush()
    if "filter" in changes:
        await _rebuild(session, segment, announce=True)
        await session.flush()
    if changes:
        _announce(session, "updated", segment, changes)
    return segment


async def delete_segment(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    """Its members are let go with it, announced by `segment.deleted` alone."""
    segment = await _locked(session, principal, id, if_match)
    await SegmentRepository(session).remove_all_members(segment)
    segment.member_count = 0
    soft_delete(segment)
    await session.flush()
    _announce(session, "deleted", segment)


async def refresh_segment(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Segment:
    segment = await _locked(session, principal, id)
    if segment.kind != SegmentKind.dynamic:
        raise Conflict("A static segment's members change only by the members calls.")
    await _rebuild(session, segment, announce=True)
    await session.flush()
    return segment


async def change_members(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: SegmentMembersChange,
    *,
    add: bool,
) -> tuple[Segment, int]:
    """Put contacts into a static segment or take them out: (the segment, how many changed)."""
    segment = await _locked(session, principal, id)
    if segment.kind != SegmentKind.static:
        raise Conflict("A dynamic segment's members follow its filter.")
    repository = SegmentRepository(session)
    if add:
        ids = await _live_contact_ids(session, principal.workspace_id, data.contact_ids)
        joined, left = await repository.add_members(segment, ids), []
    else:
        joined, left = [], await repository.remove_members(segment, data.contact_ids)
    segment.member_count += len(joined) - len(left)
    await session.flush()
    _announce_members(session, segment, joined, left)
    return segment, len(joined) + len(left)


async def preview_segment(
    session: AsyncSession, principal: Principal, data: SegmentPreview
) -> tuple[int, list[Contact]]:
    """How many contacts an unsaved filter selects, and the first of them."""
    where = await _condition(session, principal.workspace_id, data.filter)
    matching = live_contacts(principal.workspace_id, where).subquery()
    count = (await session.execute(select(func.count()).select_from(matching))).scalar_one()
    page = ListParams(limit=data.limit)
    contacts, _ = await list_records(
        ContactRepository(session), principal.workspace_id, page, where, CONTACT_SORTS,
        CONTACT_ID_SORT,
    )  # fmt: skip
    return count, contacts


async def list_members(
    session: AsyncSession, principal: Principal, id: uuid.UUID, params: ListParams
) -> tuple[list[Contact], str | None]:
    segment = await get_segment(session, principal, id)
    where = [Contact.id.in_(SegmentRepository(session).member_ids(segment))]
    return await list_records(
        ContactRepository(session), principal.workspace_id, params, where, CONTACT_SORTS,
        CONTACT_ID_SORT,
    )  # fmt: skip


async def segments_of_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, params: ListParams
) -> tuple[list[Segment], str | None]:
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    repository = SegmentRepository(session)
    where = [Segment.id.in_(repository.segment_ids_of(principal.workspace_id, contact_id))]
    return await list_records(
        repository, principal.workspace_id, params, where, SEGMENT_SORTS, SEGMENT_ID_SORT
    )


# The worker


async def refresh_stale_members(session: AsyncSession, now: datetime) -> int:
    """Look again at the segments of contacts that changed: join those a dynamic filter now
    selects, let go of those it no longer does and of contacts that are gone."""
    repository = SegmentRepository(session)
    stale = await repository.take_stale(STALE_BATCH)
    for workspace_id, contact_ids in sorted(stale.items()):
        live = await repository.matching(workspace_id, contact_ids, [])
        for segment in await repository.lock_all(workspace_id):
            wanted = live
            if segment.kind == SegmentKind.dynamic:
                assert segment.filter is not None
                try:
                    filter = FILTER.validate_python(segment.filter)
                    where = await _condition(session, workspace_id, filter)
                except InvalidInput:
                    continue  # the scheduled refresh records why
                wanted = await repository.matching(workspace_id, contact_ids, where)
            current = await repository.members_among(segment, contact_ids)
            joined = await repository.add_members(segment, sorted(wanted - current))
            left = await repository.remove_members(segment, sorted(current - wanted))
            if segment.kind == SegmentKind.static:
                joined = []  # a static segment only loses contacts that are gone
            segment.member_count += len(joined) - len(left)
            _announce_members(session, segment, joined, left)
    return sum(len(ids) for ids in stale.values())


@on_merge("contact", "segments")
async def _memberships_follow_merges(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    survivor_id: uuid.UUID,
) -> int:
    """Merged contacts leave their segments at once; the survivor takes their place in static
    ones (a dynamic one looks at the survivor again when the worker takes it from the queue).
    How many static segments the survivor joined."""
    repository = SegmentRepository(session)
    joined_static = 0
    for segment in await repository.with_members(workspace_id, merged_ids):
        left = await repository.remove_members(segment, merged_ids)
        joined = []
        if segment.kind == SegmentKind.static:
            joined = await repository.add_members(segment, [survivor_id])
            joined_static += len(joined)
        segment.member_count += len(joined) - len(left)
        _announce_members(session, segment, joined, left)
    await session.flush()
    return joined_static


async def refresh_due_segments(
    session: AsyncSession, now: datetime, every: timedelta = timedelta(hours=1)
) -> int:
    """The scheduled full evaluation, one dynamic segment per round, oldest first."""
    segment = await SegmentRepository(session).due_for_refresh(now - every)
    if segment is None:
        return 0
    await _rebuild(session, segment, announce=True)
    segment.refreshed_at = now  # also when it failed: the error says why; retried next round
    await session.flush()
    return 1
