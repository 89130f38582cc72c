import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import ETAG_HEADER, LINK_HEADER, LOCATION_HEADER, created, not_modified
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.webhooks import service
from crm_api.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt
from crm_api.webhooks.schemas import (
    DeliveryAttemptRead,
    DeliveryListParams,
    DeliveryPage,
    DeliveryRead,
    EventListParams,
    EventPage,
    EventRead,
    WebhookEndpointCreate,
    WebhookEndpointListParams,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
    WebhookRecover,
    WebhookRecovered,
    WebhookTestSent,
)

events_router = domain_router("events")
router = domain_router("webhook-endpoints")

EventReader = Annotated[Principal, Depends(require_scope(Scope.events_read))]
Reader = Annotated[Principal, Depends(require_scope(Scope.webhooks_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.webhooks_write))]
EndpointId = Annotated[uuid.UUID, Path(description="The webhook endpoint's id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id.")]
ENDPOINT_LINKS = {
    **links(
        "endpoint_id",
        "webhook_endpoints_get",
        "webhook_endpoints_update",
        "webhook_endpoints_delete",
        "webhook_endpoints_rotate_secret",
        "webhook_endpoints_test",
        "webhook_endpoints_recover",
        "webhook_deliveries_list",
    ),
}


def _delivery(delivery: WebhookDelivery, attempts: list[WebhookDeliveryAttempt]) -> DeliveryRead:
    fields = {
        name: getattr(delivery, name) for name in DeliveryRead.model_fields if name != "attempts"
    }
    fields["attempts"] = [DeliveryAttemptRead.model_validate(a) for a in attempts]
    return DeliveryRead.model_validate(fields)


@events_router.get(
    "/events",
    response_model=EventPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List events, oldest first: the feed of every change",
    description="Every change, in commit order (`sequence`). To follow the feed without "
    "webhooks, remember the `sequence` of the last event you processed and ask for "
    "`after_sequence` of it; nothing committed is ever skipped. Events are kept 30 days.",
)
async def events_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: EventReader,
    params: Annotated[EventListParams, Query()],
) -> EventPage:
    rows, next_cursor = await service.list_events(session, principal, params)
    set_link_header(request, response, next_cursor)
    return EventPage(data=[EventRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@events_router.get(
    "/events/{event_id}",
    response_model=EventRead,
    responses=problem_responses(404),
    summary="Get an event",
)
async def events_get(
    event_id: Annotated[uuid.UUID, Path(description="The event's id (its `webhook-id`).")],
    session: DbSession,
    principal: EventReader,
) -> EventRead:
    return EventRead.model_validate(await service.get_event(session, principal, event_id))


@router.get(
    "/webhook-endpoints",
    response_model=WebhookEndpointPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List webhook endpoints",
)
async def webhook_endpoints_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[WebhookEndpointListParams, Query()],
) -> WebhookEndpointPage:
    rows, next_cursor = await service.list_endpoints(session, principal, params)
    set_link_header(request, response, next_cursor)
    return WebhookEndpointPage(
        data=[WebhookEndpointRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=WebhookEndpointWithSecret,
    responses={201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": ENDPOINT_LINKS}},
    summary="Create a webhook endpoint; its signing secret is in this response",
)
async def webhook_endpoints_create(
    request: Request,
    response: Response,
    data: WebhookEndpointCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> WebhookEndpointWithSecret:
    endpoint = await service.create_endpoint(session, principal, data)
    location = str(request.url_for("webhook_endpoints_get", endpoint_id=endpoint.id))
    created(response, endpoint.version, location)
    return WebhookEndpointWithSecret.model_validate(endpoint)


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    response_model=WebhookEndpointRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a webhook endpoint",
)
async def webhook_endpoints_get(
    endpoint_id: EndpointId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> WebhookEndpointRead | Response:
    endpoint = await service.get_endpoint(session, principal, endpoint_id)
    if (unchanged := not_modified(if_none_match, endpoint.version)) is not None:
        return unchanged
    set_etag(response, endpoint.version)
    return WebhookEndpointRead.model_validate(endpoint)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=WebhookEndpointRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 412)},
    summary="Update a webhook endpoint",
)
async def webhook_endpoints_update(
    endpoint_id: EndpointId,
    data: WebhookEndpointUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> WebhookEndpointRead:
    endpoint = await service.update_endpoint(session, principal, endpoint_id, data, if_match)
    set_etag(response, endpoint.version)
    return WebhookEndpointRead.model_validate(endpoint)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a webhook endpoint; its pending deliveries are dropped",
)
async def webhook_endpoints_delete(
    endpoint_id: EndpointId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_endpoint(session, principal, endpoint_id, if_match)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 412)},
    summary="Rotate the signing secret; the old one keeps signing beside it for 24 hours",
)
async def webhook_endpoints_rotate_secret(
    endpoint_id: EndpointId,
    response: Response,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
    if_match: IfMatchHeader = None,
) -> WebhookEndpointWithSecret:
    endpoint = await service.rotate_secret(session, principal, endpoint_id, if_match)
    set_etag(response, endpoint.version)
    return WebhookEndpointWithSecret.model_validate(endpoint)


@router.post(
    "/webhook-endpoints/{endpoint_id}/test",
    status_code=202,
    response_model=WebhookTestSent,
    responses=problem_responses(404, 409),
    summary="Send the endpoint a `webhook.test` event",
)
async def webhook_endpoints_test(
    endpoint_id: EndpointId,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> WebhookTestSent:
    event_id = await service.send_test_event(session, principal, endpoint_id)
    return WebhookTestSent(event_id=event_id, endpoint_id=endpoint_id)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List an endpoint's deliveries, each with its attempts",
)
async def webhook_deliveries_list(
    endpoint_id: EndpointId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[DeliveryListParams, Query()],
) -> DeliveryPage:
    rows, next_cursor = await service.list_deliveries(session, principal, endpoint_id, params)
    set_link_header(request, response, next_cursor)
    return DeliveryPage(data=[_delivery(d, a) for d, a in rows], next_cursor=next_cursor)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}",
    response_model=DeliveryRead,
    responses=problem_responses(404),
    summary="Get a delivery with its attempts",
)
async def webhook_deliveries_get(
    endpoint_id: EndpointId, delivery_id: DeliveryId, session: DbSession, principal: Reader
) -> DeliveryRead:
    return _delivery(*await service.get_delivery(session, principal, endpoint_id, delivery_id))


@router.post(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=DeliveryRead,
    responses=problem_responses(404, 409),
    summary="Send a delivery again now",
)
async def webhook_deliveries_retry(
    endpoint_id: EndpointId,
    delivery_id: DeliveryId,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> DeliveryRead:
    return _delivery(*await service.retry_delivery(session, principal, endpoint_id, delivery_id))


@router.post(
    "/webhook-endpoints/{endpoint_id}/recover",
    status_code=202,
    response_model=WebhookRecovered,
    responses=problem_responses(404, 409),
    summary="Send again every delivery that failed in a time range",
)
async def webhook_endpoints_recover(
    endpoint_id: EndpointId,
    data: WebhookRecover,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> WebhookRecovered:
    requeued = await service.recover_deliveries(session, principal, endpoint_id, data)
    return WebhookRecovered(requeued=requeued)
