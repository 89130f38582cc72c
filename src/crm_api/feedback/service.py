import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import InvalidInput
from crm_api.core.hooks import repoint_on_merge
from crm_api.core.patch import Changes
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_live_references,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
)
from crm_api.core.writes import RecordWrites
from crm_api.feedback.models import Feedback
from crm_api.feedback.repository import FEEDBACK_ID_SORT, FEEDBACK_SORTS, FeedbackRepository
from crm_api.feedback.schemas import (
    FeedbackFields,
    FeedbackListParams,
    FeedbackRead,
    score_problem,
)
from crm_api.tickets.repository import TicketRepository
from crm_api.tickets.schemas import TicketCsat
from crm_api.tickets.service import show_csat
from crm_api.webhooks.events import emit

REQUIRED = ("kind", "score", "contact_id")


def _announce(
    session: AsyncSession, action: str, feedback: Feedback, changes: Changes | None = None
) -> None:
    data = FeedbackRead.model_validate(feedback)
    emit(session, feedback.workspace_id, f"feedback.{action}", data, changes=changes)


async def _apply(
    session: AsyncSession, principal: Principal, feedback: Feedback, data: FeedbackFields
) -> Changes:
    sent = data.model_fields_set
    for field in (*REQUIRED, "responded_at"):
        if field in sent and getattr(data, field) is None:
            raise InvalidInput(("body", field), f"A response always has its {field}.")

    def changed(field: str) -> uuid.UUID | None:
        value: uuid.UUID | None = getattr(data, field, None)
        return value if value is not None and value != getattr(feedback, field) else None

    await ensure_live_references(
        principal.workspace_id,
        [
            ("contact_id", ContactRepository(session), "contact", changed("contact_id")),
            ("ticket_id", TicketRepository(session), "ticket", changed("ticket_id")),
        ],
    )
    changes = apply_fields(feedback, data, sent)
    if (problem := score_problem(feedback.kind, feedback.score)) is not None:
        raise InvalidInput(("body", "score"), problem)
    return changes


async def _show_on_tickets(
    session: AsyncSession, feedback: Feedback, changes: Changes | None
) -> None:
    """Keep the latest CSAT response of each ticket this write touched on that ticket."""
    touched = {feedback.ticket_id}
    if changes and "ticket_id" in changes:
        touched.add(changes["ticket_id"][0])
    repository = FeedbackRepository(session)
    for ticket_id in touched - {None}:
        assert ticket_id is not None
        latest = await repository.latest_csat(feedback.workspace_id, ticket_id)
        csat = None
        if latest is not None:
            csat = TicketCsat(
                feedback_id=latest.id,
                score=latest.score,
                comment=latest.comment,
                responded_at=latest.responded_at,
            )
        await show_csat(session, feedback.workspace_id, ticket_id, csat)


async def _insert(
    session: AsyncSession, principal: Principal, data: FeedbackFields, external_id: str | None
) -> Feedback:
    for field in REQUIRED:
        if getattr(data, field, None) is None:
            raise InvalidInput(("body", field), f"`{field}` is required to record a response.")
    feedback = Feedback(
        id=new_id(),
        workspace_id=principal.workspace_id,
        external_id=external_id,
        responded_at=datetime.now(UTC),
        tags=[],
        custom_fields={},
    )
    await _apply(session, principal, feedback, data)
    FeedbackRepository(session).add(feedback)
    await session.flush()
    _announce(session, "created", feedback)
    await _show_on_tickets(session, feedback, None)
    return feedback


async def _change(
    session: AsyncSession, principal: Principal, feedback: Feedback, data: FeedbackFields
) -> Changes:
    changes = await _apply(session, principal, feedback, data)
    bump_version(feedback, changes)
    await session.flush()
    if changes:
        _announce(session, "updated", feedback, changes)
        await _show_on_tickets(session, feedback, changes)
    return changes


async def get_feedback(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Feedback:
    return await get_or_404(FeedbackRepository(session), principal.workspace_id, id, "response")


async def get_feedback_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> Feedback:
    return await get_by_external_id_or_404(
        FeedbackRepository(session), principal.workspace_id, external_id, "response"
    )


async def list_feedback(
    session: AsyncSession, principal: Principal, params: FeedbackListParams
) -> tuple[list[Feedback], str | None]:
    repository = FeedbackRepository(session)
    return await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.list_filters(params),
        FEEDBACK_SORTS,
        FEEDBACK_ID_SORT,
        default_sort="-responded_at",
    )


WRITES = RecordWrites(
    FeedbackRepository, "response", "/v1/feedback/batch/upsert", _insert, _change, _announce
)
create_feedback = WRITES.create
update_feedback = WRITES.update
upsert_feedback = WRITES.upsert
batch_upsert_feedback = WRITES.batch_upsert


async def delete_feedback(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    """A deleted CSAT answer leaves its ticket showing the one before it, if any."""
    feedback = await WRITES.delete(session, principal, id, if_match)
    await _show_on_tickets(session, feedback, None)


# Nothing points at a merged contact: its records follow it to the one it was merged into.
repoint_on_merge("contact", "feedback", Feedback, "contact_id")
