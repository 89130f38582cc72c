"""`emit()`: how every write announces itself. Events wait in the session until its transaction
commits; just before the commit they are numbered under the workspace's counter lock, written to
the outbox and fanned out to the subscribed endpoints, all in that transaction. So a rolled-back
write (or savepoint) announces nothing, and a committed one cannot go unannounced."""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from crm_api.core.db import new_id
from crm_api.core.patch import Changes
from crm_api.webhooks.catalog import EVENT_TYPES, matches
from crm_api.webhooks.repository import OutboxWriter, Subscriber

_OUTBOX = "crm_api.outbox"


@dataclass(frozen=True)
class PendingEvent:
    id: uuid.UUID
    workspace_id: uuid.UUID
    type: str
    resource_id: uuid.UUID | None
    data: dict[str, Any]
    changes: dict[str, Any] | None
    endpoint_id: uuid.UUID | None
    transaction: SessionTransaction | None


def emit(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    type: str,
    data: BaseModel,
    *,
    changes: Changes | None = None,
    endpoint_id: uuid.UUID | None = None,
    resource_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Announce a change. `data` is the resource as the API returns it (so call this after the
    flush that gives it its final values); `changes` are an update's old and new values.
    `endpoint_id` sends the event to that endpoint only, and keeps it out of the feed.
    `resource_id` names the resource of data without an `id` (a contact's loyalty account)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}: add it to webhooks/catalog.py")
    sync_session = session.sync_session
    pending = PendingEvent(
        id=new_id(),
        workspace_id=workspace_id,
        type=type,
        resource_id=resource_id or getattr(data, "id", None),
        data=data.model_dump(mode="json"),
        changes=None
        if changes is None
        else {
            field: {"old": to_jsonable_python(old), "new": to_jsonable_python(new)}
            for field, (old, new) in sorted(changes.items())
        },
        endpoint_id=endpoint_id,
        # Tied to the innermost transaction, so its rollback takes the event with it.
        transaction=sync_session.get_nested_transaction()
        or sync_session.get_transaction()
        or sync_session.begin(),
    )
    sync_session.info.setdefault(_OUTBOX, []).append(pending)
    return pending.id


# Called with a transaction's events just before they are published, in that transaction:
# how a higher domain keeps what it derives from changes (segment metrics) in step with them.
EventObserver = Callable[[Session, Sequence[PendingEvent]], None]
_OBSERVERS: list[EventObserver] = []


def observe(observer: EventObserver) -> EventObserver:
    _OBSERVERS.append(observer)
    return observer


@event.listens_for(Session, "before_commit")
def _publish_before_commit(session: Session) -> None:
    # A savepoint's release fires this too; its events wait for the real commit, so the
    # counter lock is taken last and held only for the commit itself.
    if session.get_nested_transaction() is not None:
        return
    pending: list[PendingEvent] = session.info.pop(_OUTBOX, [])
    if pending:
        for observer in _OBSERVERS:
            observer(session, pending)
        _publish(OutboxWriter(session), pending)


@event.listens_for(Session, "after_soft_rollback")
def _discard_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[PendingEvent] | None = session.info.get(_OUTBOX)
    if pending:
        session.info[_OUTBOX] = [
            p for p in pending if not _inside(p.transaction, previous_transaction)
        ]


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    # Whatever ended the session's transaction (commit, rollback, close), nothing may carry
    # over into the next one.
    if transaction.parent is None:
        session.info.pop(_OUTBOX, None)


def _inside(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return outer.parent is None  # the root's rollback takes everything with it


def _publish(writer: OutboxWriter, pending: list[PendingEvent]) -> None:
    # Workspaces in a fixed order, so two transactions never wait on each other's counters.
    for workspace_id, group in groupby(
        sorted(pending, key=attrgetter("workspace_id")), key=attrgetter("workspace_id")
    ):
        events = list(group)
        first_sequence, now, subscribers = writer.open(workspace_id, len(events))
        rows = [
            {
                "id": e.id,
                "sequence": first_sequence + i,
                "type": e.type,
                "resource_id": e.resource_id,
                "data": e.data,
                "changes": e.changes,
                "endpoint_id": e.endpoint_id,
            }
            for i, e in enumerate(events)
        ]
        deliveries = [
            {
                "id": new_id(),
                "endpoint_id": subscriber.id,
                "event_id": row["id"],
                "event_type": row["type"],
                "event_sequence": row["sequence"],
            }
            for row, event in zip(rows, events, strict=True)
            for subscriber in subscribers
            if _wanted(subscriber, event)
        ]
        writer.write(workspace_id, now, rows, deliveries)


def _wanted(subscriber: Subscriber, event: PendingEvent) -> bool:
    if event.endpoint_id is not None:
        return event.endpoint_id == subscriber.id
    if not matches(subscriber.event_types, event.type):
        return False
    # A field filter narrows updates to those that change one of its fields.
    fields = subscriber.fields
    return not (fields and event.changes is not None and not set(fields) & event.changes.keys())
