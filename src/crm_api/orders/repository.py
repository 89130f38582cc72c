import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement
from sqlalchemy.orm import selectinload

from crm_api.companies.repository import company_relation
from crm_api.contacts.repository import contact_relation
from crm_api.core.filters import (
    FilterField,
    FilterFields,
    Kind,
    choice,
    record_fields,
)
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.orders.models import Order
from crm_api.orders.schemas import OrderListParams, OrderStatus

ORDER_FILTERS = FilterFields(
    fields={
        **record_fields(Order),
        "contact_id": FilterField(Kind.id, Order.contact_id),
        "company_id": FilterField(Kind.id, Order.company_id),
        "order_number": FilterField(Kind.text, Order.order_number),
        "status": choice(Order.status, OrderStatus),
        "ordered_at": FilterField(Kind.datetime, Order.ordered_at),
        "currency": FilterField(Kind.text, Order.currency),
        "total": FilterField(Kind.number, Order.total),
        "margin": FilterField(Kind.number, Order.margin),
        "source_system": FilterField(Kind.text, Order.source_system),
        "paid_at": FilterField(Kind.datetime, Order.paid_at),
        "refunded_at": FilterField(Kind.datetime, Order.refunded_at),
        "cancelled_at": FilterField(Kind.datetime, Order.cancelled_at),
    },
    relations={
        "contact": contact_relation(Order),
        "company": company_relation(Order),
    },
    custom_fields=Order.custom_fields,
)
ORDER_ID_SORT = SortField(Order.id, uuid.UUID)
ORDER_SORTS = {
    "ordered_at": SortField(Order.ordered_at, datetime),
    "created_at": SortField(Order.created_at, datetime),
    "updated_at": SortField(Order.updated_at, datetime),
    "total": SortField(Order.total, Decimal),
}


class OrderRepository(Repository[Order]):
    model = Order
    eager = (selectinload(Order.lines),)

    def list_filters(self, params: OrderListParams) -> list[ColumnElement[bool]]:
        where = record_filters(Order, params)
        for field in (
            "status",
            "contact_id",
            "company_id",
            "currency",
            "order_number",
            "source_system",
        ):
            if (value := getattr(params, field)) is not None:
                where.append(getattr(Order, field) == value)
        if params.ordered_after is not None:
            where.append(Order.ordered_at >= params.ordered_after)
        if params.ordered_before is not None:
            where.append(Order.ordered_at < params.ordered_before)
        return where
