import uuid
from datetime import datetime

from sqlalchemy import ColumnElement

from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.interactions.models import Interaction
from crm_api.interactions.schemas import InteractionListParams

INTERACTION_ID_SORT = SortField(Interaction.id, uuid.UUID)
INTERACTION_SORTS = {
    "occurred_at": SortField(Interaction.occurred_at, datetime),
    "created_at": SortField(Interaction.created_at, datetime),
    "updated_at": SortField(Interaction.updated_at, datetime),
}


class InteractionRepository(Repository[Interaction]):
    model = Interaction

    def list_filters(self, params: InteractionListParams) -> list[ColumnElement[bool]]:
        where = record_filters(Interaction, params)
        for field in ("channel", "direction", "contact_id", "company_id", "deal_id", "user_id"):
            if (value := getattr(params, field)) is not None:
                where.append(getattr(Interaction, field) == value)
        if params.occurred_after is not None:
            where.append(Interaction.occurred_at >= params.occurred_after)
        if params.occurred_before is not None:
            where.append(Interaction.occurred_at < params.occurred_before)
        return where
