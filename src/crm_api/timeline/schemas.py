import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from crm_api.core.pagination import Page
from crm_api.core.schemas import ListParams, ReadSchema, UtcDatetime
from crm_api.deals.schemas import DealRead, DealStageChangeRead
from crm_api.feedback.schemas import FeedbackRead
from crm_api.interactions.schemas import InteractionRead
from crm_api.orders.schemas import OrderRead
from crm_api.tickets.schemas import CommentRead, TicketRead


class TimelineKind(StrEnum):
    """What an entry is, and when it happened: `interaction` (occurred_at), `ticket` (opened:
    created_at), `ticket_comment` (created_at), `deal` (created_at), `deal_stage_change` (a
    move: changed_at), `order` (ordered_at), `feedback` (responded_at)."""

    interaction = "interaction"
    ticket = "ticket"
    ticket_comment = "ticket_comment"
    deal = "deal"
    deal_stage_change = "deal_stage_change"
    order = "order"
    feedback = "feedback"


class TimelineParams(ListParams):
    sort: str | None = Field(
        default=None,
        max_length=200,
        description="`-occurred_at` (default: newest first) or `occurred_at`.",
        examples=["occurred_at"],
    )
    kind: list[TimelineKind] | None = Field(
        default=None, description="Only these kinds (repeat the parameter)."
    )
    occurred_after: UtcDatetime | None = Field(default=None, description="occurred_at ≥ this.")
    occurred_before: UtcDatetime | None = Field(default=None, description="occurred_at < this.")


class TimelineEntry(ReadSchema):
    """One entry; the field named by `kind` holds the record as its own endpoint returns it,
    and the other record fields are null."""

    kind: TimelineKind
    id: uuid.UUID = Field(description="The record's id.")
    occurred_at: datetime
    interaction: InteractionRead | None = None
    ticket: TicketRead | None = None
    ticket_comment: CommentRead | None = None
    deal: DealRead | None = None
    deal_stage_change: DealStageChangeRead | None = None
    order: OrderRead | None = None
    feedback: FeedbackRead | None = None


class TimelinePage(Page[TimelineEntry]):
    pass
