from datetime import datetime

from pydantic import BaseModel, Field

from crm_api.analytics.schemas import ContactMetricsRead
from crm_api.audit.schemas import AuditEntryRead
from crm_api.contacts.schemas import ContactRead
from crm_api.deals.schemas import DealRead
from crm_api.feedback.schemas import FeedbackRead
from crm_api.interactions.schemas import InteractionRead
from crm_api.orders.schemas import OrderRead
from crm_api.segments.schemas import SegmentRead
from crm_api.tickets.schemas import CommentRead, TicketRead


class ContactExport(BaseModel):
    """Everything the workspace holds on one person (GDPR art. 15 and 20)."""

    exported_at: datetime
    contact: ContactRead
    merged_contacts: list[ContactRead] = Field(
        description="Contacts merged into this one: what they held before the merge."
    )
    interactions: list[InteractionRead]
    tickets: list[TicketRead]
    ticket_comments: list[CommentRead] = Field(
        description="On the person's tickets, and any the person wrote."
    )
    deals: list[DealRead] = Field(description="Deals the person takes part in.")
    orders: list[OrderRead]
    feedback: list[FeedbackRead]
    segments: list[SegmentRead] = Field(description="Segments the person is a member of.")
    metrics: ContactMetricsRead
    audit_log: list[AuditEntryRead] = Field(description="Every recorded change of the contact.")
