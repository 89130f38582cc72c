import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.batch import BatchUpsertResult
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
from crm_api.core.filters import SearchParams
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import (
    ETAG_HEADER,
    LINK_HEADER,
    LOCATION_HEADER,
    created,
    not_modified,
    upserted,
)
from crm_api.core.routing import domain_router
from crm_api.core.schemas import ExternalId
from crm_api.core.scopes import Scope
from crm_api.orders import service
from crm_api.orders.schemas import (
    OrderBatchUpsert,
    OrderCreate,
    OrderListParams,
    OrderPage,
    OrderRead,
    OrderUpdate,
    OrderUpsert,
)

router = domain_router("orders")

Reader = Annotated[Principal, Depends(require_scope(Scope.orders_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.orders_write))]
INTERACTION_LINKS = links("order_id", "orders_get", "orders_update", "orders_delete")
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
INTERACTION_UPSERT_LINKS = {
    **INTERACTION_LINKS,
    **links("external_id", "orders_get_by_external_id", field="external_id"),
}
OrderId = Annotated[uuid.UUID, Path(description="The order's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for it.")]


@router.get(
    "/orders",
    response_model=OrderPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List orders, newest first",
)
async def orders_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[OrderListParams, Query()],
) -> OrderPage:
    rows, next_cursor = await service.list_orders(session, principal, params)
    set_link_header(request, response, next_cursor)
    return OrderPage(data=[OrderRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/orders/search",
    response_model=OrderPage,
    summary="Search orders with the filter language, newest first unless sorted",
    description=service.SEARCH_DESCRIPTION,
)
async def orders_search(data: SearchParams, session: DbSession, principal: Reader) -> OrderPage:
    rows, next_cursor = await service.search_orders(session, principal, data)
    return OrderPage(data=[OrderRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": INTERACTION_LINKS},
        **problem_responses(409),
    },
    summary="Record an order",
)
async def orders_create(
    request: Request,
    response: Response,
    data: OrderCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> OrderRead:
    order = await service.create_order(session, principal, data)
    location = str(request.url_for("orders_get", order_id=order.id))
    created(response, order.version, location)
    return OrderRead.model_validate(order)


@router.post(
    "/orders/batch/upsert",
    response_model=BatchUpsertResult,
    summary="Create or update up to 1,000 orders by external id",
)
async def orders_batch_upsert(
    data: OrderBatchUpsert,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> BatchUpsertResult:
    results = await service.batch_upsert_orders(session, principal, data.items)
    return BatchUpsertResult(results=results)


@router.get(
    "/orders/external/{external_id}",
    response_model=OrderRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get an order by external id",
)
async def orders_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> OrderRead:
    order = await service.get_order_by_external_id(session, principal, external_id)
    set_etag(response, order.version)
    return OrderRead.model_validate(order)


@router.put(
    "/orders/external/{external_id}",
    response_model=OrderRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": INTERACTION_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": INTERACTION_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update an order by external id",
)
async def orders_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: OrderUpsert,
    session: DbSession,
    principal: Writer,
) -> OrderRead:
    order, was_created, _ = await service.upsert_order(session, principal, external_id, data)
    location = str(request.url_for("orders_get", order_id=order.id))
    upserted(response, order.version, location if was_created else None)
    return OrderRead.model_validate(order)


@router.get(
    "/orders/{order_id}",
    response_model=OrderRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get an order",
)
async def orders_get(
    order_id: OrderId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> OrderRead | Response:
    order = await service.get_order(session, principal, order_id)
    if (unchanged := not_modified(if_none_match, order.version)) is not None:
        return unchanged
    set_etag(response, order.version)
    return OrderRead.model_validate(order)


@router.patch(
    "/orders/{order_id}",
    response_model=OrderRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update an order",
)
async def orders_update(
    order_id: OrderId,
    data: OrderUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> OrderRead:
    order = await service.update_order(session, principal, order_id, data, if_match)
    set_etag(response, order.version)
    return OrderRead.model_validate(order)


@router.delete(
    "/orders/{order_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete an order",
)
async def orders_delete(
    order_id: OrderId,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_order(session, principal, order_id, if_match)
    return Response(status_code=204)
