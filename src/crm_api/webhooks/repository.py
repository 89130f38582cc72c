import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.webhooks.models import (
    Event,
    EventCounter,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from crm_api.webhooks.schemas import DeliveryListParams, WebhookEndpointListParams

WAKE_CHANNEL = "crm_webhook_deliveries"

EVENT_SEQUENCE_SORT = {"sequence": SortField(Event.sequence, int)}
ENDPOINT_ID_SORT = SortField(WebhookEndpoint.id, uuid.UUID)
ENDPOINT_SORTS = {"created_at": SortField(WebhookEndpoint.created_at, datetime)}
DELIVERY_ID_SORT = SortField(WebhookDelivery.id, uuid.UUID)
DELIVERY_SORTS = {"created_at": SortField(WebhookDelivery.created_at, datetime)}

# Both statements below are the whole cost of announcing a write: two round trips at commit.
_OPEN_OUTBOX = text(
    """
    WITH counter AS (
      INSERT INTO event_counters AS c (workspace_id, last_sequence)
      VALUES (:workspace_id, :count)
      ON CONFLICT (workspace_id) DO UPDATE SET last_sequence = c.last_sequence + :count
      RETURNING last_sequence, clock_timestamp() AS now
    )
    SELECT counter.last_sequence, counter.now, e.id, e.event_types, e.fields
    FROM counter LEFT JOIN webhook_endpoints AS e
      ON e.workspace_id = :workspace_id AND e.enabled AND e.deleted_at IS NULL
    """
)
_WRITE_OUTBOX = text(
    """
    WITH new_events AS (
      INSERT INTO events
        (workspace_id, id, sequence, type, occurred_at, resource_id, data, changes, endpoint_id)
      SELECT :workspace_id, e.id, e.sequence, e.type, :now, e.resource_id, e.data::json,
             e.changes::json, e.endpoint_id
      FROM unnest(CAST(:ids AS uuid[]), CAST(:sequences AS bigint[]), CAST(:types AS text[]),
                  CAST(:resource_ids AS uuid[]), CAST(:data AS text[]),
                  CAST(:changes AS text[]), CAST(:endpoint_ids AS uuid[]))
        AS e(id, sequence, type, resource_id, data, changes, endpoint_id)
    ), new_deliveries AS (
      INSERT INTO webhook_deliveries
        (workspace_id, id, endpoint_id, event_id, event_type, event_sequence, next_attempt_at)
      SELECT :workspace_id, d.id, d.endpoint_id, d.event_id, d.event_type, d.event_sequence, :now
      FROM unnest(CAST(:delivery_ids AS uuid[]), CAST(:delivery_endpoint_ids AS uuid[]),
                  CAST(:delivery_event_ids AS uuid[]), CAST(:delivery_event_types AS text[]),
                  CAST(:delivery_sequences AS bigint[]))
        AS d(id, endpoint_id, event_id, event_type, event_sequence)
    )
    -- Delivered to listening workers when (and only if) the transaction commits.
    SELECT pg_notify(:channel, '') WHERE :wake
    """
)


@dataclass(frozen=True)
class Subscriber:
    id: uuid.UUID
    event_types: list[str]
    fields: list[str]


class OutboxWriter:
    """The outbox's writes at commit time. Synchronous: it runs inside the session's
    before_commit hook, on the connection of the transaction being committed."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def open(self, workspace_id: uuid.UUID, count: int) -> tuple[int, datetime, list[Subscriber]]:
        """The first of `count` new sequence numbers, the time, and the endpoints to consider.
        The counter's row stays locked until the commit, so sequences follow commit order."""
        rows = self.session.execute(
            _OPEN_OUTBOX, {"workspace_id": workspace_id, "count": count}
        ).all()
        last, now = rows[0][0], rows[0][1]
        subscribers = [Subscriber(r[2], r[3], r[4]) for r in rows if r[2] is not None]
        return int(last) - count + 1, now, subscribers

    def write(
        self,
        workspace_id: uuid.UUID,
        now: datetime,
        events: Sequence[dict[str, Any]],
        deliveries: Sequence[dict[str, Any]],
    ) -> None:
        """The events and their deliveries, in one statement."""
        self.session.execute(
            _WRITE_OUTBOX,
            {
                "workspace_id": workspace_id,
                "now": now,
                "ids": [e["id"] for e in events],
                "sequences": [e["sequence"] for e in events],
                "types": [e["type"] for e in events],
                "resource_ids": [e["resource_id"] for e in events],
                "data": [json.dumps(e["data"], ensure_ascii=False) for e in events],
                "changes": [
                    None if e["changes"] is None else json.dumps(e["changes"], ensure_ascii=False)
                    for e in events
                ],
                "endpoint_ids": [e["endpoint_id"] for e in events],
                "delivery_ids": [d["id"] for d in deliveries],
                "delivery_endpoint_ids": [d["endpoint_id"] for d in deliveries],
                "delivery_event_ids": [d["event_id"] for d in deliveries],
                "delivery_event_types": [d["event_type"] for d in deliveries],
                "delivery_sequences": [d["event_sequence"] for d in deliveries],
                "channel": WAKE_CHANNEL,
                "wake": bool(deliveries),
            },
        )


class EventRepository(Repository[Event]):
    model = Event
    gone_column = None

    def scoped(self, workspace_id: uuid.UUID) -> Select[Event]:
        # Events meant for one endpoint (`webhook.test`) are not part of the feed.
        return super().scoped(workspace_id).where(Event.endpoint_id.is_(None))

    def feed_filters(
        self,
        types: Sequence[str],
        resource_id: uuid.UUID | None,
        after_sequence: int | None,
        occurred_after: datetime | None,
        occurred_before: datetime | None,
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if types:
            exact = [t for t in types if "*" not in t]
            prefixes = [t.removesuffix("*") for t in types if t.endswith(".*")]
            suffixes = [t.removeprefix("*") for t in types if t.startswith("*.")]
            where.append(
                or_(
                    Event.type.in_(exact),
                    *(Event.type.startswith(p, autoescape=True) for p in prefixes),
                    *(Event.type.endswith(s, autoescape=True) for s in suffixes),
                )
            )
        if resource_id is not None:
            where.append(Event.resource_id == resource_id)
        if after_sequence is not None:
            where.append(Event.sequence > after_sequence)
        if occurred_after is not None:
            where.append(Event.occurred_at >= occurred_after)
        if occurred_before is not None:
            where.append(Event.occurred_at < occurred_before)
        return where

    async def last_sequence(self, workspace_id: uuid.UUID) -> int:
        """The sequence of the workspace's latest event (0: none yet)."""
        statement = select(EventCounter.last_sequence).where(
            EventCounter.workspace_id == workspace_id
        )
        return int((await self.session.execute(statement)).scalar_one_or_none() or 0)

    async def between(
        self, workspace_id: uuid.UUID, after: int, through: int, types: Sequence[str]
    ) -> list[Event]:
        """The feed's events after one sequence through another, of these types (wildcards as
        in the feed's `type` parameter), in order: what the worker's feed readers take."""
        statement = (
            self.scoped(workspace_id)
            .where(
                Event.sequence > after,
                Event.sequence <= through,
                *self.feed_filters(types, None, None, None, None),
            )
            .order_by(Event.sequence)
        )
        return list((await self.session.execute(statement)).scalars())

    async def get_any(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Event]:
        """Events by id, those for one endpoint included (the dispatcher sends them)."""
        statement = select(Event).where(Event.workspace_id == workspace_id, Event.id.in_(ids))
        return list((await self.session.execute(statement)).scalars())

    async def prune(self, older_than: timedelta) -> int:
        """Drop old events; their deliveries and attempts go with them (ON DELETE CASCADE)."""
        result = await self.session.execute(
            delete(Event).where(Event.occurred_at < func.now() - older_than)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class WebhookEndpointRepository(Repository[WebhookEndpoint]):
    model = WebhookEndpoint

    def list_filters(self, params: WebhookEndpointListParams) -> list[ColumnElement[bool]]:
        return [] if params.enabled is None else [WebhookEndpoint.enabled.is_(params.enabled)]

    async def get_many(self, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> list[WebhookEndpoint]:
        """Endpoints by (workspace_id, id), deleted or not (the dispatcher's view)."""
        statement = select(WebhookEndpoint).where(_endpoint_keys(keys))
        return list((await self.session.execute(statement)).scalars())

    async def lock_many(self, keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> list[WebhookEndpoint]:
        """The same, locked in key order (so two lockers cannot deadlock)."""
        statement = (
            select(WebhookEndpoint)
            .where(_endpoint_keys(keys))
            .order_by(WebhookEndpoint.workspace_id, WebhookEndpoint.id)
            .with_for_update()
        )
        return list((await self.session.execute(statement)).scalars())


def _endpoint_keys(keys: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> ColumnElement[bool]:
    pairs = [func.row(workspace_id, id) for workspace_id, id in sorted(set(keys))]
    return func.row(WebhookEndpoint.workspace_id, WebhookEndpoint.id).in_(pairs)


class DeliveryRepository(Repository[WebhookDelivery]):
    model = WebhookDelivery
    gone_column = None

    def list_filters(
        self, endpoint_id: uuid.UUID, params: DeliveryListParams
    ) -> list[ColumnElement[bool]]:
        where = [WebhookDelivery.endpoint_id == endpoint_id]
        if params.status is not None:
            where.append(WebhookDelivery.status == params.status.value)
        if params.event_type is not None:
            where.append(WebhookDelivery.event_type == params.event_type)
        if params.event_id is not None:
            where.append(WebhookDelivery.event_id == params.event_id)
        return where

    async def attempts_of(
        self, workspace_id: uuid.UUID, delivery_ids: Sequence[uuid.UUID]
    ) -> list[WebhookDeliveryAttempt]:
        statement = (
            select(WebhookDeliveryAttempt)
            .where(
                WebhookDeliveryAttempt.workspace_id == workspace_id,
                WebhookDeliveryAttempt.delivery_id.in_(delivery_ids),
            )
            .order_by(WebhookDeliveryAttempt.attempted_at, WebhookDeliveryAttempt.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def claim_due(
        self, limit: int, lease: timedelta, claim_id: uuid.UUID
    ) -> list[WebhookDelivery]:
        """Take up to `limit` due deliveries of enabled endpoints, oldest first, for `lease`.
        SKIP LOCKED: concurrent workers take different rows and never wait on each other."""
        due = (
            select(WebhookDelivery.workspace_id, WebhookDelivery.id)
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.workspace_id == WebhookDelivery.workspace_id)
                & (WebhookEndpoint.id == WebhookDelivery.endpoint_id),
            )
            .where(
                WebhookDelivery.status.in_(("pending", "delivering")),
                WebhookDelivery.next_attempt_at <= func.now(),
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.deleted_at.is_(None),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_sequence)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
            .subquery()
        )
        statement = (
            update(WebhookDelivery)
            .where(
                WebhookDelivery.workspace_id == due.c.workspace_id,
                WebhookDelivery.id == due.c.id,
            )
            .values(status="delivering", next_attempt_at=func.now() + lease, claim_id=claim_id)
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False)
        )
        claimed = list((await self.session.execute(statement)).scalars())
        return sorted(claimed, key=lambda d: (d.next_attempt_at, d.event_sequence))

    async def next_due_at(self) -> datetime | None:
        statement = select(func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.status.in_(("pending", "delivering"))
        )
        result: datetime | None = await self.session.scalar(statement)
        return result

    async def release(self, claim_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
        """Give back deliveries this claim did not attempt; any worker may take them now."""
        await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.claim_id == claim_id, WebhookDelivery.id.in_(ids))
            .values(status="pending", next_attempt_at=func.now(), claim_id=None)
            .execution_options(synchronize_session=False)
        )

    async def lock_claimed(
        self, claim_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> list[WebhookDelivery]:
        """The deliveries this claim still holds (a lease that ran out may have been taken)."""
        statement = (
            select(WebhookDelivery)
            .where(WebhookDelivery.claim_id == claim_id, WebhookDelivery.id.in_(ids))
            .with_for_update()
        )
        return list((await self.session.execute(statement)).scalars())

    def add_attempts(self, attempts: Sequence[WebhookDeliveryAttempt]) -> None:
        self.session.add_all(attempts)

    async def fail_pending_of(
        self, workspace_id: uuid.UUID, endpoint_id: uuid.UUID, why: str
    ) -> None:
        await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.workspace_id == workspace_id,
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status.in_(("pending", "delivering")),
            )
            .values(
                status="failed",
                next_attempt_at=None,
                claim_id=None,
                last_error=why,
                completed_at=func.now(),
            )
            .execution_options(synchronize_session=False)
        )

    async def requeue_failed(
        self,
        workspace_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        since: datetime,
        until: datetime | None,
    ) -> int:
        """Put the endpoint's failed deliveries created in [since, until) back in the queue, due
        now; how many."""
        statement = (
            update(WebhookDelivery)
            .where(
                WebhookDelivery.workspace_id == workspace_id,
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == "failed",
                WebhookDelivery.created_at >= since,
            )
            .values(status="pending", next_attempt_at=func.now(), completed_at=None)
            .execution_options(synchronize_session=False)
        )
        if until is not None:
            statement = statement.where(WebhookDelivery.created_at < until)
        result = await self.session.execute(statement)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def wake_dispatchers(self) -> None:
        await self.session.execute(select(func.pg_notify(WAKE_CHANNEL, "")))
