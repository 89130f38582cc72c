"""Every event type the API emits, and the patterns endpoints subscribe with."""

from enum import StrEnum
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic_core import CoreSchema


class EventTypePattern(StrEnum):
    """What an endpoint subscribes to: an event type, every action of a resource
    (`contact.*`), one action of every resource (`*.deleted`), or everything (`*`). A new event
    type is added here, with the wildcards it brings (a test checks they are all present)."""

    any = "*"
    api_key_any = "api_key.*"
    company_any = "company.*"
    contact_any = "contact.*"
    custom_field_any = "custom_field.*"
    deal_any = "deal.*"
    feedback_any = "feedback.*"
    import_any = "import.*"
    interaction_any = "interaction.*"
    lead_score_model_any = "lead_score_model.*"
    lead_scoring_any = "lead_scoring.*"
    loyalty_account_any = "loyalty_account.*"
    loyalty_entry_any = "loyalty_entry.*"
    loyalty_program_any = "loyalty_program.*"
    order_any = "order.*"
    pipeline_any = "pipeline.*"
    playbooks_any = "playbooks.*"
    segment_any = "segment.*"
    sla_policy_any = "sla_policy.*"
    team_any = "team.*"
    ticket_any = "ticket.*"
    ticket_comment_any = "ticket_comment.*"
    user_any = "user.*"
    webhook_endpoint_any = "webhook_endpoint.*"
    workspace_any = "workspace.*"
    any_badge_awarded = "*.badge_awarded"
    any_birthday = "*.birthday"
    any_cancelled = "*.cancelled"
    any_completed = "*.completed"
    any_created = "*.created"
    any_customer_anniversary = "*.customer_anniversary"
    any_deleted = "*.deleted"
    any_disabled = "*.disabled"
    any_erased = "*.erased"
    any_lead_score_changed = "*.lead_score_changed"
    any_lost = "*.lost"
    any_member_added = "*.member_added"
    any_member_removed = "*.member_removed"
    any_merged = "*.merged"
    any_sla_breached = "*.sla_breached"
    any_stage_changed = "*.stage_changed"
    any_status_changed = "*.status_changed"
    any_tier_downgraded = "*.tier_downgraded"
    any_tier_upgraded = "*.tier_upgraded"
    any_updated = "*.updated"
    any_won = "*.won"
    api_key_created = "api_key.created"
    api_key_deleted = "api_key.deleted"
    company_created = "company.created"
    company_deleted = "company.deleted"
    company_updated = "company.updated"
    contact_birthday = "contact.birthday"
    contact_created = "contact.created"
    contact_customer_anniversary = "contact.customer_anniversary"
    contact_deleted = "contact.deleted"
    contact_erased = "contact.erased"
    contact_lead_score_changed = "contact.lead_score_changed"
    contact_merged = "contact.merged"
    contact_updated = "contact.updated"
    custom_field_created = "custom_field.created"
    custom_field_deleted = "custom_field.deleted"
    custom_field_updated = "custom_field.updated"
    deal_created = "deal.created"
    deal_deleted = "deal.deleted"
    deal_lost = "deal.lost"
    deal_stage_changed = "deal.stage_changed"
    deal_updated = "deal.updated"
    deal_won = "deal.won"
    feedback_created = "feedback.created"
    feedback_deleted = "feedback.deleted"
    feedback_updated = "feedback.updated"
    import_cancelled = "import.cancelled"
    import_completed = "import.completed"
    import_created = "import.created"
    interaction_created = "interaction.created"
    interaction_deleted = "interaction.deleted"
    interaction_updated = "interaction.updated"
    lead_score_model_created = "lead_score_model.created"
    lead_scoring_created = "lead_scoring.created"
    lead_scoring_updated = "lead_scoring.updated"
    loyalty_account_badge_awarded = "loyalty_account.badge_awarded"
    loyalty_account_tier_downgraded = "loyalty_account.tier_downgraded"
    loyalty_account_tier_upgraded = "loyalty_account.tier_upgraded"
    loyalty_entry_created = "loyalty_entry.created"
    loyalty_program_created = "loyalty_program.created"
    loyalty_program_updated = "loyalty_program.updated"
    order_created = "order.created"
    order_deleted = "order.deleted"
    order_updated = "order.updated"
    pipeline_created = "pipeline.created"
    pipeline_deleted = "pipeline.deleted"
    pipeline_updated = "pipeline.updated"
    playbooks_created = "playbooks.created"
    playbooks_updated = "playbooks.updated"
    segment_created = "segment.created"
    segment_deleted = "segment.deleted"
    segment_member_added = "segment.member_added"
    segment_member_removed = "segment.member_removed"
    segment_updated = "segment.updated"
    sla_policy_created = "sla_policy.created"
    sla_policy_deleted = "sla_policy.deleted"
    sla_policy_updated = "sla_policy.updated"
    team_created = "team.created"
    team_deleted = "team.deleted"
    team_updated = "team.updated"
    ticket_created = "ticket.created"
    ticket_deleted = "ticket.deleted"
    ticket_sla_breached = "ticket.sla_breached"
    ticket_status_changed = "ticket.status_changed"
    ticket_updated = "ticket.updated"
    ticket_comment_created = "ticket_comment.created"
    user_created = "user.created"
    user_deleted = "user.deleted"
    user_updated = "user.updated"
    webhook_endpoint_created = "webhook_endpoint.created"
    webhook_endpoint_deleted = "webhook_endpoint.deleted"
    webhook_endpoint_disabled = "webhook_endpoint.disabled"
    webhook_endpoint_updated = "webhook_endpoint.updated"
    workspace_updated = "workspace.updated"

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        # Names for generated clients' enums (`CONTACT_ANY`, not `VALUE_3`).
        schema = dict(handler(core_schema))
        schema["x-enum-varnames"] = [member.name for member in cls]
        return schema


# Sent to one endpoint on request, never to subscribers or the feed.
TEST_EVENT = "webhook.test"
SUBSCRIBABLE = frozenset(p.value for p in EventTypePattern if "*" not in p.value)
EVENT_TYPES = SUBSCRIBABLE | {TEST_EVENT}


def wildcards_of(event_types: frozenset[str]) -> frozenset[str]:
    """The patterns a set of event types calls for."""
    resources = {t.partition(".")[0] for t in event_types}
    actions = {t.partition(".")[2] for t in event_types}
    return frozenset({"*"} | {f"{r}.*" for r in resources} | {f"*.{a}" for a in actions})


def matches(patterns: list[str], event_type: str) -> bool:
    resource, _, action = event_type.partition(".")
    return any(p in ("*", event_type, f"{resource}.*", f"*.{action}") for p in patterns)
