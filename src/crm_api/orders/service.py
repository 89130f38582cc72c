import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import Conflict, InvalidInput
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import SearchParams, search_description
from crm_api.core.hooks import repoint_on_merge
from crm_api.core.patch import Changes, assign
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_live_references,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
)
from crm_api.core.writes import RecordWrites, RowOutcome
from crm_api.custom_fields.service import search_records
from crm_api.orders.models import Order, OrderLine
from crm_api.orders.repository import ORDER_FILTERS, ORDER_ID_SORT, ORDER_SORTS, OrderRepository
from crm_api.orders.schemas import (
    OrderFields,
    OrderLineInput,
    OrderListParams,
    OrderRead,
    OrderUpdate,
)
from crm_api.webhooks.events import emit

# Where an order may go from each status, and the time each status stamps.
TRANSITIONS = {
    "pending": {"paid", "cancelled", "refunded"},
    "paid": {"refunded", "cancelled"},
    "refunded": set(),
    "cancelled": set(),
}
STAMPS = {"paid": "paid_at", "refunded": "refunded_at", "cancelled": "cancelled_at"}
MONEY = {"total": Decimal, "margin": lambda v: Decimal(v) if v is not None else None}


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Not allowed in this status"


def _announce(
    session: AsyncSession, action: str, order: Order, changes: Changes | None = None
) -> None:
    emit(
        session,
        order.workspace_id,
        f"order.{action}",
        OrderRead.model_validate(order),
        changes=changes,
    )


def _line_values(lines: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(ln.sku, ln.name, Decimal(ln.quantity), Decimal(ln.unit_price)) for ln in lines]


def _line_json(lines: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {"sku": sku, "name": name, "quantity": str(q), "unit_price": str(p)}
        for sku, name, q, p in _line_values(lines)
    ]


def _set_lines(order: Order, lines: Sequence[OrderLineInput], changes: Changes) -> None:
    if _line_values(lines) == _line_values(order.lines):
        return
    old = _line_json(order.lines)
    order.lines = [
        OrderLine(
            workspace_id=order.workspace_id,
            order_id=order.id,
            position=position,
            sku=line.sku,
            name=line.name,
            quantity=Decimal(line.quantity),
            unit_price=Decimal(line.unit_price),
        )
        for position, line in enumerate(lines)
    ]
    changes["lines"] = (old, _line_json(lines))


def _set_status(order: Order, status: str, changes: Changes, now: datetime) -> None:
    if status == order.status:
        return
    if status not in TRANSITIONS[order.status]:
        allowed = sorted(TRANSITIONS[order.status])
        raise InvalidTransition(
            f"A {order.status} order cannot become {status}"
            + (
                f"; it may become {', '.join(allowed)}."
                if allowed
                else f": {order.status} is final."
            ),
            allowed=allowed,
        )
    assign(order, changes, "status", status)
    if status in STAMPS:
        assign(order, changes, STAMPS[status], now)


def _check_fields(data: OrderFields) -> None:
    for field in ("contact_id", "status", "ordered_at", "currency", "total"):
        if field in data.model_fields_set and getattr(data, field) is None:
            raise InvalidInput(("body", field), f"An order always has its {field}.")


async def _check_references(
    session: AsyncSession, principal: Principal, pairs: Sequence[tuple[Order, OrderFields]]
) -> None:
    """The contacts and companies the orders are given must be live: one query for each."""

    def changed(order: Order, data: OrderFields, field: str) -> uuid.UUID | None:
        value: uuid.UUID | None = getattr(data, field)
        return value if value is not None and value != getattr(order, field) else None

    contacts, companies = ContactRepository(session), CompanyRepository(session)
    await ensure_live_references(
        principal.workspace_id,
        [
            reference
            for order, data in pairs
            for reference in (
                ("contact_id", contacts, "contact", changed(order, data, "contact_id")),
                ("company_id", companies, "company", changed(order, data, "company_id")),
            )
        ],
    )


def _apply(order: Order, data: OrderFields) -> Changes:
    sent = data.model_fields_set
    now = datetime.now(UTC)
    changes = apply_fields(order, data, sent - {"status", "lines"}, MONEY)
    if data.lines is not None:
        _set_lines(order, data.lines, changes)
        if "total" not in sent:
            lines = _line_values(data.lines)
            total = sum((quantity * price for _, _, quantity, price in lines), Decimal(0))
            assign(order, changes, "total", total)
    if data.status is not None:
        _set_status(order, str(data.status), changes, now)
    return changes


def _new_order(principal: Principal, data: OrderFields, external_id: str | None) -> Order:
    _check_fields(data)
    for field in ("contact_id", "currency"):
        if getattr(data, field) is None:
            raise InvalidInput(("body", field), f"`{field}` is required to create an order.")
    if data.total is None and not data.lines:
        raise InvalidInput(("body", "total"), "Send the order's total, or its lines.")
    return Order(
        id=new_id(),
        workspace_id=principal.workspace_id,
        external_id=external_id,
        status="pending",
        ordered_at=datetime.now(UTC),
        tags=[],
        custom_fields={},
        lines=[],
    )


async def _insert_many(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[tuple[OrderFields, str | None]],
) -> list[Order]:
    """New orders, all in one flush: (fields, external id) each."""
    pairs = [(_new_order(principal, data, external_id), data) for data, external_id in items]
    await _check_references(session, principal, pairs)
    repository = OrderRepository(session)
    for order, data in pairs:
        _apply(order, data)
        repository.add(order)
    await session.flush()
    for order, _ in pairs:
        _announce(session, "created", order)
    return [order for order, _ in pairs]


async def _insert(
    session: AsyncSession, principal: Principal, data: OrderFields, external_id: str | None
) -> Order:
    [order] = await _insert_many(session, principal, [(data, external_id)])
    return order


async def _change(
    session: AsyncSession, principal: Principal, order: Order, data: OrderFields
) -> Changes:
    _check_fields(data)
    await _check_references(session, principal, [(order, data)])
    changes = _apply(order, data)
    bump_version(order, changes)
    await session.flush()
    if changes:
        _announce(session, "updated", order, changes)
    return changes


async def get_order(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Order:
    return await get_or_404(OrderRepository(session), principal.workspace_id, id, "order")


async def get_order_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> Order:
    return await get_by_external_id_or_404(
        OrderRepository(session), principal.workspace_id, external_id, "order"
    )


async def list_orders(
    session: AsyncSession, principal: Principal, params: OrderListParams
) -> tuple[list[Order], str | None]:
    repository = OrderRepository(session)
    return await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.list_filters(params),
        ORDER_SORTS,
        ORDER_ID_SORT,
        default_sort="-ordered_at",
    )


SEARCH_DESCRIPTION = search_description(ORDER_FILTERS)


async def search_orders(
    session: AsyncSession, principal: Principal, params: SearchParams
) -> tuple[list[Order], str | None]:
    return await search_records(
        OrderRepository(session),
        principal.workspace_id,
        params,
        CustomFieldResource.orders,
        ORDER_FILTERS,
        ORDER_SORTS,
        ORDER_ID_SORT,
        default_sort="-ordered_at",
    )


WRITES = RecordWrites(
    OrderRepository,
    "order",
    "/v1/orders/batch/upsert",
    _insert,
    _change,
    _announce,
    insert_many=_insert_many,
)
create_order = WRITES.create
update_order = WRITES.update
upsert_order = WRITES.upsert
batch_upsert_orders = WRITES.batch_upsert
delete_order = WRITES.delete


async def import_orders(
    session: AsyncSession, principal: Principal, rows: Sequence[tuple[int, OrderUpdate]]
) -> dict[int, RowOutcome]:
    """Apply import rows: each updates the order it names by external_id, else by
    order_number, or creates one."""
    return await WRITES.import_rows(session, principal, rows, ["order_number"])


# Nothing points at a merged contact: its records follow it to the one it was merged into.
repoint_on_merge("contact", "orders", Order, "contact_id")
