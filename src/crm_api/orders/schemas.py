import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from crm_api.core.batch import MAX_BATCH_ITEMS
from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    CurrencyCode,
    CustomFields,
    DecimalText,
    ExternalId,
    InputSchema,
    Label,
    MoneyAmount,
    ReadSchema,
    RecordListParams,
    ShortText,
    Tags,
    UtcDatetime,
    unique_tags,
)


class OrderStatus(StrEnum):
    """pending → paid → refunded; pending or paid → cancelled; refunded and cancelled are
    final (409)."""

    pending = "pending"
    paid = "paid"
    refunded = "refunded"
    cancelled = "cancelled"


Quantity = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,12}([.][0-9]{1,4})?$"),
    Field(description="A decimal string greater than 0.", examples=["2"]),
]


class OrderLineInput(InputSchema):
    sku: Label | None = None
    name: ShortText
    quantity: Quantity
    unit_price: MoneyAmount


class OrderLineRead(ReadSchema):
    sku: str | None
    name: str
    quantity: DecimalText
    unit_price: DecimalText


def _has_quantity(lines: list[OrderLineInput]) -> list[OrderLineInput]:
    for line in lines:
        if float(line.quantity) == 0:
            raise ValueError("a line's quantity must be greater than 0")
    return lines


OrderLines = Annotated[
    list[OrderLineInput],
    Field(max_length=500, description="Replaces the order's lines."),
    AfterValidator(_has_quantity),
]


class OrderFields(InputSchema):
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    order_number: Label | None = Field(default=None, description="Unique in the workspace.")
    status: OrderStatus | None = Field(default=None, description="Default `pending`.")
    ordered_at: UtcDatetime | None = Field(default=None, description="Default: now.")
    currency: CurrencyCode | None = None
    total: MoneyAmount | None = Field(
        default=None,
        description="Default: the sum of the lines (quantity times unit price). An ERP's total "
        "with tax, shipping or discounts is taken as sent.",
    )
    margin: Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,15}([.][0-9]{1,4})?$")] | None = (
        Field(default=None, description="A decimal string; may be negative.")
    )
    lines: OrderLines | None = None
    source_system: Label | None = Field(default=None, examples=["sap"])
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    custom_fields: CustomFields | None = None


ORDER_EXAMPLE: dict[str, Any] = {
    "contact_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
    "order_number": "SO-100482",
    "status": "paid",
    "ordered_at": "2026-11-28T10:15:00Z",
    "currency": "EUR",
    "lines": [
        {"sku": "CHAIR-01", "name": "Office chair", "quantity": "2", "unit_price": "149.00"},
        {"sku": "DESK-02", "name": "Standing desk", "quantity": "1", "unit_price": "499.00"},
    ],
    "source_system": "sap",
}


class OrderCreate(OrderFields):
    model_config = {"json_schema_extra": {"examples": [{**ORDER_EXAMPLE, "external_id": "SAP-1"}]}}

    contact_id: uuid.UUID
    currency: CurrencyCode
    external_id: ExternalId | None = None


class OrderUpdate(OrderFields):
    """Only the fields sent change; `null` clears a field; `lines` sent replace the lines."""

    model_config = {"json_schema_extra": {"examples": [{"status": "refunded"}]}}

    external_id: ExternalId | None = None


class OrderUpsert(OrderFields):
    """Upsert by the ERP's id in the path: creates the order (`contact_id`, `currency` and a
    total or lines are required then) or updates it as PATCH would; a replay changes nothing
    and announces nothing."""

    model_config = {"json_schema_extra": {"examples": [ORDER_EXAMPLE]}}


class OrderUpsertItem(OrderUpsert):
    external_id: ExternalId


class OrderBatchUpsert(InputSchema):
    model_config = {
        "json_schema_extra": {"examples": [{"items": [{**ORDER_EXAMPLE, "external_id": "SAP-1"}]}]}
    }

    items: Annotated[list[OrderUpsertItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class OrderRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    order_number: str | None
    contact_id: uuid.UUID
    company_id: uuid.UUID | None
    status: OrderStatus
    ordered_at: datetime
    currency: str
    total: DecimalText
    margin: DecimalText | None
    lines: list[OrderLineRead]
    source_system: str | None
    paid_at: datetime | None
    refunded_at: datetime | None
    cancelled_at: datetime | None
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int


class OrderListParams(RecordListParams):
    status: OrderStatus | None = None
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    currency: CurrencyCode | None = None
    order_number: Label | None = None
    source_system: Label | None = None
    ordered_after: UtcDatetime | None = Field(default=None, description="ordered_at ≥ this.")
    ordered_before: UtcDatetime | None = Field(default=None, description="ordered_at < this.")


class OrderPage(Page[OrderRead]):
    pass
