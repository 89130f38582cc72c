"""Contact metrics (contacts.models.ContactMetrics) and stale segment memberships, kept in step
with every committed change: an observer of the transaction's events recomputes the metrics of
the contacts whose orders, feedback or tickets changed, and queues every touched contact for
the worker to look at its segments again (segments.service.refresh_stale_members)."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from crm_api.webhooks.events import PendingEvent, observe

# Paid orders count (pending ones may never be paid; refunded and cancelled ones were undone);
# open tickets are those not resolved or closed; the NPS score is the latest answer's.
_METRICS_OF = """
SELECT c.workspace_id, c.id, coalesce(o.n, 0), coalesce(o.spent, 0), o.first_at, o.last_at,
       f.score, coalesce(t.n, 0), now()
FROM contacts c
LEFT JOIN LATERAL (
    SELECT count(*) AS n, sum(total) AS spent, min(ordered_at) AS first_at,
           max(ordered_at) AS last_at
    FROM orders
    WHERE workspace_id = c.workspace_id AND contact_id = c.id AND status = 'paid'
      AND deleted_at IS NULL
) o ON true
LEFT JOIN LATERAL (
    SELECT score FROM feedback
    WHERE workspace_id = c.workspace_id AND contact_id = c.id AND kind = 'nps'
      AND deleted_at IS NULL
    ORDER BY responded_at DESC, id DESC LIMIT 1
) f ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS n FROM tickets
    WHERE workspace_id = c.workspace_id AND contact_id = c.id
      AND status IN ('new', 'open', 'pending') AND deleted_at IS NULL
) t ON true
WHERE c.workspace_id = :workspace_id {which}
"""
_UPSERT = """
INSERT INTO contact_metrics (workspace_id, contact_id, order_count, total_spent, first_order_at,
                             last_order_at, last_nps_score, open_ticket_count, updated_at)
{select}
ON CONFLICT (workspace_id, contact_id) DO UPDATE SET
    order_count = excluded.order_count, total_spent = excluded.total_spent,
    first_order_at = excluded.first_order_at, last_order_at = excluded.last_order_at,
    last_nps_score = excluded.last_nps_score, open_ticket_count = excluded.open_ticket_count,
    updated_at = excluded.updated_at
"""
IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
REFRESH_METRICS = text(
    _UPSERT.format(select=_METRICS_OF.format(which="AND c.id = ANY(:ids)"))
).bindparams(IDS)
REFRESH_ALL_METRICS = text(_UPSERT.format(select=_METRICS_OF.format(which="")))
# Only workspaces with segments keep a queue.
HAS_SEGMENTS = text(
    "SELECT EXISTS (SELECT 1 FROM segments WHERE workspace_id = :workspace_id "
    "AND deleted_at IS NULL)"
)
QUEUE_CONTACTS = text(
    "INSERT INTO segment_stale_contacts (workspace_id, contact_id) "
    "SELECT :workspace_id, unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING"
).bindparams(IDS)
QUEUE_COMPANY_CONTACTS = text(
    "INSERT INTO segment_stale_contacts (workspace_id, contact_id) "
    "SELECT workspace_id, id FROM contacts "
    "WHERE workspace_id = :workspace_id AND company_id = ANY(:ids) "
    "ON CONFLICT DO NOTHING"
).bindparams(IDS)

ACTIVITY = frozenset({"order", "feedback", "ticket"})

Touched = defaultdict[uuid.UUID, set[uuid.UUID]]


def contacts_named(
    type: str, resource_id: object, data: dict[str, Any], changes: dict[str, Any] | None
) -> set[uuid.UUID]:
    """The contacts an event is about: the contact itself, the one it was merged into, or the
    contact of an order, feedback, ticket or interaction, before and after a move."""
    names = {data.get("contact_id"), data.get("merged_into_id")}
    if type.startswith("contact."):
        names.add(str(resource_id))
    moved = (changes or {}).get("contact_id")
    if moved:
        names |= {moved["old"], moved["new"]}
    return {uuid.UUID(str(name)) for name in names if name}


@observe
def _keep_metrics_and_segments(session: Session, pending: Sequence[PendingEvent]) -> None:
    with_activity: Touched = defaultdict(set)
    touched: Touched = defaultdict(set)
    companies: Touched = defaultdict(set)
    for event in pending:
        noun = event.type.partition(".")[0]
        if event.endpoint_id is not None:
            continue
        if noun == "company" and event.type != "company.created":
            companies[event.workspace_id].add(uuid.UUID(str(event.resource_id)))
        elif noun == "contact" or noun in ACTIVITY:
            contacts = contacts_named(event.type, event.resource_id, event.data, event.changes)
            touched[event.workspace_id] |= contacts
            if noun in ACTIVITY:
                with_activity[event.workspace_id] |= contacts
    for workspace_id, ids in sorted(with_activity.items()):
        session.execute(REFRESH_METRICS, {"workspace_id": workspace_id, "ids": sorted(ids)})
    for workspace_id in sorted(touched.keys() | companies.keys()):
        if not session.execute(HAS_SEGMENTS, {"workspace_id": workspace_id}).scalar():
            continue
        for statement, ids in (
            (QUEUE_CONTACTS, touched[workspace_id]),
            (QUEUE_COMPANY_CONTACTS, companies[workspace_id]),
        ):
            if ids:
                session.execute(statement, {"workspace_id": workspace_id, "ids": sorted(ids)})
