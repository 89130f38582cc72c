import uuid
from datetime import datetime

from sqlalchemy import ColumnElement

from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.feedback.models import Feedback
from crm_api.feedback.schemas import FeedbackListParams

FEEDBACK_ID_SORT = SortField(Feedback.id, uuid.UUID)
FEEDBACK_SORTS = {
    "responded_at": SortField(Feedback.responded_at, datetime),
    "created_at": SortField(Feedback.created_at, datetime),
    "updated_at": SortField(Feedback.updated_at, datetime),
}


class FeedbackRepository(Repository[Feedback]):
    model = Feedback

    def list_filters(self, params: FeedbackListParams) -> list[ColumnElement[bool]]:
        where = record_filters(Feedback, params)
        for field in ("kind", "channel", "contact_id", "ticket_id"):
            if (value := getattr(params, field)) is not None:
                where.append(getattr(Feedback, field) == value)
        if params.min_score is not None:
            where.append(Feedback.score >= params.min_score)
        if params.max_score is not None:
            where.append(Feedback.score <= params.max_score)
        if params.responded_after is not None:
            where.append(Feedback.responded_at >= params.responded_after)
        if params.responded_before is not None:
            where.append(Feedback.responded_at < params.responded_before)
        return where

    async def latest_csat(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID) -> Feedback | None:
        statement = (
            self.scoped(workspace_id)
            .where(Feedback.ticket_id == ticket_id, Feedback.kind == "csat")
            .order_by(Feedback.responded_at.desc(), Feedback.id.desc())
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()
