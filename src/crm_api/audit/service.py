"""Audit entries from the events a transaction announces (webhooks/events.py observers), so
every write that is announced is audited, in its own transaction, as the actor the session acts
for (core/actors.py). Values of secret fields are masked."""

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crm_api.audit.models import AuditEntry
from crm_api.audit.repository import AUDIT_ID_SORT, AUDIT_SORTS, AuditRepository
from crm_api.audit.schemas import AuditListParams
from crm_api.core.actors import Actor, actor_of
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.patch import HIDDEN
from crm_api.core.records import list_records
from crm_api.webhooks.events import PendingEvent, observe

MASK = HIDDEN
# Field names whose values are never written to the log.
SECRET_FIELD = re.compile(r"secret|password|token|key_hash|^key$", re.IGNORECASE)


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if SECRET_FIELD.search(k) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def audited_changes(event: PendingEvent, action: str) -> dict[str, Any] | None:
    """An update's `{field: {old, new}}`; a creation's values as new, a deletion's as old."""
    changes = event.changes
    if changes is None and action == "created":
        changes = {field: {"old": None, "new": v} for field, v in event.data.items()}
    if changes is None and action == "deleted":
        changes = {field: {"old": v, "new": None} for field, v in event.data.items()}
    if changes is None:
        return None
    # A secret field's old and new values are both masked.
    return {
        field: MASK if SECRET_FIELD.search(field) else masked(change)
        for field, change in changes.items()
    }


def _entry(actor: Actor, event: PendingEvent) -> dict[str, Any]:
    resource, _, action = event.type.partition(".")  # contact.updated
    return {
        "workspace_id": event.workspace_id,
        "id": new_id(),
        "api_key_id": actor.api_key_id,
        "user_id": actor.user_id,
        "request_id": actor.request_id,
        "client_address": actor.client_address,
        "operation": actor.operation,
        "resource": resource,
        "resource_id": event.resource_id,
        "action": action,
        "changes": audited_changes(event, action),
        "event_id": event.id,
    }


@observe
def record_audit_entries(session: Session, events: Sequence[PendingEvent]) -> None:
    actor = actor_of(session.info)
    if actor is None:  # the worker's own changes (SLA breaches, scores): in the event feed
        return
    # A test delivery to one endpoint changes nothing.
    rows = [_entry(actor, event) for event in events if event.endpoint_id is None]
    if rows:
        session.execute(insert(AuditEntry), rows)


async def list_audit_entries(
    session: AsyncSession, principal: Principal, params: AuditListParams
) -> tuple[list[AuditEntry], str | None]:
    repository = AuditRepository(session)
    where = repository.list_filters(params)
    return await list_records(
        repository, principal.workspace_id, params, where, AUDIT_SORTS, AUDIT_ID_SORT,
        default_sort="-created_at",
    )  # fmt: skip
