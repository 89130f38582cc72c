import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement
from sqlalchemy.orm import selectinload

from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.orders.models import Order
from crm_api.orders.schemas import OrderListParams

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
