import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import Conflict, InvalidInput, NotFound
from crm_api.core.patch import HIDDEN
from crm_api.core.records import (
    apply_fields,
    bump_version,
    get_or_404,
    list_records,
    soft_delete,
)
from crm_api.core.telemetry import DELIVERY_ATTEMPTS
from crm_api.settings import get_settings
from crm_api.webhooks.catalog import TEST_EVENT
from crm_api.webhooks.events import emit
from crm_api.webhooks.models import Event, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from crm_api.webhooks.repository import (
    DELIVERY_ID_SORT,
    DELIVERY_SORTS,
    ENDPOINT_ID_SORT,
    ENDPOINT_SORTS,
    EVENT_SEQUENCE_SORT,
    DeliveryRepository,
    EventRepository,
    WebhookEndpointRepository,
)
from crm_api.webhooks.schemas import (
    DeliveryListParams,
    EventListParams,
    WebhookEndpointCreate,
    WebhookEndpointListParams,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookRecover,
)
from crm_api.webhooks.signing import new_secret
from crm_api.webhooks.urls import url_problem

# How long a rotated-out secret keeps signing beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)
# A receiver's Retry-After is honoured up to a day.
MAX_RETRY_AFTER = 86400.0


class EndpointDisabled(Conflict):
    slug, title = "endpoint-disabled", "Endpoint disabled"


class DeliveryInProgress(Conflict):
    slug, title = "delivery-in-progress", "Delivery in progress"


# --- events -------------------------------------------------------------------------------


async def list_events(
    session: AsyncSession, principal: Principal, params: EventListParams
) -> tuple[list[Event], str | None]:
    repository = EventRepository(session)
    where = repository.feed_filters(
        params.type.split(",") if params.type else [],
        params.resource_id,
        params.after_sequence,
        params.occurred_after,
        params.occurred_before,
    )
    id_sort = EVENT_SEQUENCE_SORT["sequence"]
    return await list_records(
        repository, principal.workspace_id, params, where, EVENT_SEQUENCE_SORT, id_sort,
        default_sort="sequence",
    )  # fmt: skip


async def get_event(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Event:
    return await get_or_404(EventRepository(session), principal.workspace_id, id, "event")


# --- endpoints ------------------------------------------------------------------------------


def _check_url(url: str) -> None:
    if (problem := url_problem(url, get_settings().webhooks_allow_insecure)) is not None:
        raise InvalidInput(("body", "url"), f"The URL {problem}.")


def _announce(session: AsyncSession, endpoint: WebhookEndpoint, action: str, **kw: object) -> None:
    emit(
        session,
        endpoint.workspace_id,
        f"webhook_endpoint.{action}",
        WebhookEndpointRead.model_validate(endpoint),
        **kw,  # type: ignore[arg-type]
    )


async def create_endpoint(
    session: AsyncSession, principal: Principal, data: WebhookEndpointCreate
) -> WebhookEndpoint:
    _check_url(data.url)
    endpoint = WebhookEndpoint(
        id=new_id(),
        workspace_id=principal.workspace_id,
        url=data.url,
        description=data.description,
        event_types=[pattern.value for pattern in data.event_types],
        fields=data.fields or [],
        enabled=data.enabled,
        secret=new_secret(),
    )
    WebhookEndpointRepository(session).add(endpoint)
    await session.flush()
    _announce(session, endpoint, "created")
    return endpoint


async def list_endpoints(
    session: AsyncSession, principal: Principal, params: WebhookEndpointListParams
) -> tuple[list[WebhookEndpoint], str | None]:
    repository = WebhookEndpointRepository(session)
    where = repository.list_filters(params)
    return await list_records(
        repository, principal.workspace_id, params, where, ENDPOINT_SORTS, ENDPOINT_ID_SORT
    )


async def get_endpoint(
    session: AsyncSession, principal: Principal, id: uuid.UUID
) -> WebhookEndpoint:
    return await get_or_404(
        WebhookEndpointRepository(session), principal.workspace_id, id, "webhook endpoint"
    )


async def _lock_endpoint(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> WebhookEndpoint:
    return await get_or_404(
        WebhookEndpointRepository(session),
        principal.workspace_id,
        id,
        "webhook endpoint",
        for_update=True,
        if_match=if_match,
    )


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: WebhookEndpointUpdate,
    if_match: str | None,
) -> WebhookEndpoint:
    endpoint = await _lock_endpoint(session, principal, id, if_match)
    if data.url is not None:
        _check_url(data.url)
    was_enabled = endpoint.enabled
    converters = {
        "fields": lambda fields: fields or [],
        "event_types": lambda patterns: [pattern.value for pattern in patterns],
    }
    changes = apply_fields(endpoint, data, data.model_fields_set, converters)
    if endpoint.enabled and not was_enabled:
        # A fresh start: the failure run that disabled it is over.
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif was_enabled and not endpoint.enabled:
        await DeliveryRepository(session).fail_pending_of(
            endpoint.workspace_id, endpoint.id, "The endpoint was disabled."
        )
    bump_version(endpoint, changes)
    await session.flush()
    if changes:
        _announce(session, endpoint, "updated", changes=changes)
    return endpoint


async def delete_endpoint(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    endpoint = await _lock_endpoint(session, principal, id, if_match)
    soft_delete(endpoint)
    await DeliveryRepository(session).fail_pending_of(
        endpoint.workspace_id, endpoint.id, "The endpoint was deleted."
    )
    await session.flush()
    _announce(session, endpoint, "deleted")


async def rotate_secret(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> WebhookEndpoint:
    """A new secret; the current one keeps signing beside it for 24 hours, so receivers can
    switch without losing a delivery."""
    endpoint = await _lock_endpoint(session, principal, id, if_match)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = datetime.now(UTC) + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    endpoint.version += 1
    endpoint.updated_at = func.now()
    await session.flush()
    await session.refresh(endpoint, ["updated_at"])
    # Announced (and so audited) as a change of the secret, whose values never leave here.
    _announce(session, endpoint, "updated", changes={"secret": (HIDDEN, HIDDEN)})
    return endpoint


async def send_test_event(session: AsyncSession, principal: Principal, id: uuid.UUID) -> uuid.UUID:
    endpoint = await get_endpoint(session, principal, id)
    if not endpoint.enabled:
        raise EndpointDisabled("Enable the endpoint before sending it a test event.")
    return emit(
        session,
        endpoint.workspace_id,
        TEST_EVENT,
        WebhookEndpointRead.model_validate(endpoint),
        endpoint_id=endpoint.id,
    )


# --- deliveries -----------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, params: DeliveryListParams
) -> tuple[list[tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]], str | None]:
    await get_endpoint(session, principal, endpoint_id)
    repository = DeliveryRepository(session)
    where = repository.list_filters(endpoint_id, params)
    deliveries, next_cursor = await list_records(
        repository, principal.workspace_id, params, where, DELIVERY_SORTS, DELIVERY_ID_SORT
    )
    return await _with_attempts(repository, principal, deliveries), next_cursor


async def _with_attempts(
    repository: DeliveryRepository, principal: Principal, deliveries: Sequence[WebhookDelivery]
) -> list[tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]]:
    attempts = await repository.attempts_of(principal.workspace_id, [d.id for d in deliveries])
    by_delivery: dict[uuid.UUID, list[WebhookDeliveryAttempt]] = {d.id: [] for d in deliveries}
    for attempt in attempts:
        by_delivery[attempt.delivery_id].append(attempt)
    return [(d, by_delivery[d.id]) for d in deliveries]


async def _with_its_attempts(
    repository: DeliveryRepository, principal: Principal, delivery: WebhookDelivery
) -> tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]:
    [(delivery, attempts)] = await _with_attempts(repository, principal, [delivery])
    return delivery, attempts


async def _delivery_of(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    delivery_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> WebhookDelivery:
    repository = DeliveryRepository(session)
    delivery = await get_or_404(
        repository, endpoint.workspace_id, delivery_id, "delivery", for_update=for_update
    )
    if delivery.endpoint_id != endpoint.id:
        raise NotFound(f"No delivery with id {delivery_id} for this endpoint.")
    return delivery


async def get_delivery(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    delivery = await _delivery_of(session, endpoint, delivery_id)
    return await _with_its_attempts(DeliveryRepository(session), principal, delivery)


async def retry_delivery(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]:
    """Send the event again now, whatever became of it; receivers dedupe on `webhook-id`."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled("Enable the endpoint before retrying its deliveries.")
    delivery = await _delivery_of(session, endpoint, delivery_id, for_update=True)
    lease = delivery.next_attempt_at
    if delivery.status == "delivering" and lease is not None and lease > datetime.now(UTC):
        raise DeliveryInProgress("A worker is sending this delivery right now.")
    delivery.status = "pending"
    delivery.next_attempt_at = func.now()
    delivery.claim_id = None
    delivery.completed_at = None
    repository = DeliveryRepository(session)
    await session.flush()
    await session.refresh(delivery, ["next_attempt_at"])
    await repository.wake_dispatchers()
    return await _with_its_attempts(repository, principal, delivery)


async def recover_deliveries(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, data: WebhookRecover
) -> int:
    """After an outage (or a disabled spell): send again every delivery that failed in a time
    range, in their original order."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabled("Enable the endpoint before recovering its deliveries.")
    repository = DeliveryRepository(session)
    requeued = await repository.requeue_failed(
        endpoint.workspace_id, endpoint.id, data.since, data.until
    )
    if requeued:
        await repository.wake_dispatchers()
    return requeued


@dataclass(frozen=True)
class AttemptOutcome:
    """What one POST of a delivery gave."""

    workspace_id: uuid.UUID
    endpoint_id: uuid.UUID
    delivery_id: uuid.UUID
    attempted_at: datetime
    duration_ms: int
    response_status: int | None = None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, from the receiver's Retry-After

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks us to stop (Standard Webhooks)."""
        return self.response_status == 410


async def record_outcomes(
    session: AsyncSession,
    claim_id: uuid.UUID,
    outcomes: Sequence[AttemptOutcome],
    retry_delays: Sequence[float],
    disable_after: timedelta,
) -> None:
    """Write what a worker's attempts gave: each attempt in the log; each delivery succeeded,
    scheduled again (backoff with jitter, or the receiver's Retry-After) or, after the last
    attempt or a 410, failed; each endpoint's run of failures, disabling it when the run has
    lasted too long or the receiver answered 410 Gone."""
    # Endpoints first, then deliveries: the order the API's endpoint writes lock them in.
    endpoints = await WebhookEndpointRepository(session).lock_many(
        [(o.workspace_id, o.endpoint_id) for o in outcomes]
    )
    repository = DeliveryRepository(session)
    held = {
        d.id: d for d in await repository.lock_claimed(claim_id, [o.delivery_id for o in outcomes])
    }
    repository.add_attempts(
        [
            WebhookDeliveryAttempt(
                workspace_id=o.workspace_id,
                id=new_id(),
                delivery_id=o.delivery_id,
                attempted_at=o.attempted_at,
                succeeded=o.succeeded,
                response_status=o.response_status,
                response_body=o.response_body,
                error=o.error,
                duration_ms=o.duration_ms,
            )
            for o in outcomes
        ]
    )
    for outcome in outcomes:
        # A delivery whose lease ran out belongs to another worker now: only the log keeps
        # this attempt.
        if (delivery := held.get(outcome.delivery_id)) is not None:
            _schedule(delivery, outcome, retry_delays)
            result = "retrying" if delivery.status == "pending" else delivery.status
        else:
            result = "lease_lost"
        DELIVERY_ATTEMPTS.labels(result).inc()
    for endpoint in endpoints:
        mine = sorted(
            (o for o in outcomes if o.endpoint_id == endpoint.id), key=lambda o: o.attempted_at
        )
        await _track_failures(session, endpoint, mine, disable_after)
    await session.flush()


def _schedule(
    delivery: WebhookDelivery, outcome: AttemptOutcome, retry_delays: Sequence[float]
) -> None:
    delivery.attempt_count += 1
    delivery.claim_id = None
    delivery.last_attempt_at = outcome.attempted_at
    delivery.last_response_status = outcome.response_status
    delivery.last_error = outcome.error
    if outcome.succeeded or outcome.gone or delivery.attempt_count > len(retry_delays):
        delivery.status = "succeeded" if outcome.succeeded else "failed"
        delivery.next_attempt_at = None
        delivery.completed_at = outcome.attempted_at
        return
    delay = retry_delays[delivery.attempt_count - 1] * random.uniform(0.8, 1.2)
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
    delivery.status = "pending"
    delivery.next_attempt_at = outcome.attempted_at + timedelta(seconds=delay)


async def _track_failures(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    outcomes: Sequence[AttemptOutcome],
    disable_after: timedelta,
) -> None:
    for outcome in outcomes:
        if outcome.succeeded:
            endpoint.failing_since = None
        elif endpoint.failing_since is None:
            endpoint.failing_since = outcome.attempted_at
    if not endpoint.enabled or endpoint.deleted_at is not None:
        return
    if any(o.gone for o in outcomes):
        await _disable(session, endpoint, "The receiver answered 410 Gone.")
    elif endpoint.failing_since is not None and (
        outcomes[-1].attempted_at - endpoint.failing_since >= disable_after
    ):
        since = endpoint.failing_since.isoformat()
        await _disable(session, endpoint, f"Every attempt since {since} failed.")


async def _disable(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    await session.flush()  # this batch's outcomes first, then the bulk update below
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.version += 1
    endpoint.updated_at = func.now()
    await DeliveryRepository(session).fail_pending_of(
        endpoint.workspace_id, endpoint.id, "The endpoint was disabled."
    )
    await session.flush()
    _announce(session, endpoint, "disabled")
