"""Every domain's tables, so Base.metadata is complete (Alembic, mappers)."""

from crm_api.analytics.models import ClvRun, ClvRunCustomer
from crm_api.audit import service as audit  # noqa: F401  (audits each transaction's events)
from crm_api.audit.models import AuditEntry
from crm_api.companies.models import Company
from crm_api.contacts.models import Contact, ContactEmail, ContactMetrics, ContactOccasion
from crm_api.core.db import Base
from crm_api.core.idempotency import IdempotencyRecord
from crm_api.custom_fields import validation  # noqa: F401  (the flush-time check)
from crm_api.custom_fields.models import CustomFieldDefinition
from crm_api.deals.models import Deal, DealContact, DealStageChange, Pipeline, Stage
from crm_api.feedback.models import Feedback
from crm_api.imports.models import Import, ImportChunk, ImportRowError
from crm_api.interactions.models import Interaction
from crm_api.loyalty.models import LoyaltyAccount, LoyaltyBadgeAward, LoyaltyEntry, LoyaltyProgram
from crm_api.orders.models import Order, OrderLine
from crm_api.playbooks.models import Playbooks
from crm_api.scoring.models import LeadScoreModel, LeadScoring
from crm_api.segments import metrics  # noqa: F401  (keeps contact metrics and segments current)
from crm_api.segments.models import Segment, SegmentMember, StaleContact
from crm_api.tickets.models import SlaPolicy, Ticket, TicketComment, TicketStatusChange
from crm_api.users.models import Team, TeamMember, User
from crm_api.webhooks import events  # noqa: F401  (the outbox's commit hook)
from crm_api.webhooks.models import (
    Event,
    EventCounter,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from crm_api.workspaces.models import ApiKey, Workspace

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "ClvRun",
    "ClvRunCustomer",
    "Company",
    "Contact",
    "ContactEmail",
    "ContactMetrics",
    "ContactOccasion",
    "CustomFieldDefinition",
    "Deal",
    "DealContact",
    "DealStageChange",
    "Event",
    "EventCounter",
    "Feedback",
    "IdempotencyRecord",
    "Import",
    "ImportChunk",
    "ImportRowError",
    "Interaction",
    "LeadScoreModel",
    "LeadScoring",
    "LoyaltyAccount",
    "LoyaltyBadgeAward",
    "LoyaltyEntry",
    "LoyaltyProgram",
    "Order",
    "OrderLine",
    "Pipeline",
    "Playbooks",
    "Segment",
    "SegmentMember",
    "SlaPolicy",
    "Stage",
    "StaleContact",
    "Team",
    "TeamMember",
    "Ticket",
    "TicketComment",
    "TicketStatusChange",
    "User",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
    "Workspace",
]
