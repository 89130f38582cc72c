import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, Numeric, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.core.db import Base, RecordMixin
from crm_api.core.errors import register_constraint

ORDER_STATUSES = ("pending", "paid", "refunded", "cancelled")
LIVE = text("deleted_at IS NULL")


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "order_id"], ["orders.workspace_id", "orders.id"], ondelete="CASCADE"
        ),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("unit_price >= 0", name="unit_price"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str | None] = mapped_column(Text, default=None)
    name: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)


class Order(RecordMixin, Base):
    """An order as the ERP has it. A refund or cancellation changes its status and stamps the
    time; the order itself stays, so revenue history stays true."""

    __tablename__ = "orders"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        ForeignKeyConstraint(
            ["workspace_id", "company_id"], ["companies.workspace_id", "companies.id"]
        ),
        CheckConstraint(f"status IN {ORDER_STATUSES}", name="status"),
        CheckConstraint("total >= 0", name="total"),
        Index(
            "uq_orders_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "uq_orders_workspace_id_order_number",
            "workspace_id",
            "order_number",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_orders_workspace_id_ordered_at_id",
            "workspace_id",
            "ordered_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_orders_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_orders_workspace_id_contact_id_ordered_at",
            "workspace_id",
            "contact_id",
            "ordered_at",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_orders_workspace_id_company_id_ordered_at",
            "workspace_id",
            "company_id",
            "ordered_at",
            postgresql_where=LIVE,
        ),
    )

    contact_id: Mapped[uuid.UUID]
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    order_number: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(Text)
    ordered_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(Text)
    total: Mapped[Decimal] = mapped_column(Numeric)
    margin: Mapped[Decimal | None] = mapped_column(Numeric, default=None)
    source_system: Mapped[str | None] = mapped_column(Text, default=None)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    refunded_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    lines: Mapped[list[OrderLine]] = relationship(
        lazy="raise", order_by=OrderLine.position, cascade="all, delete-orphan"
    )


register_constraint(
    "uq_orders_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another order already has this external_id.",
)
register_constraint(
    "uq_orders_workspace_id_order_number",
    409,
    ("body", "order_number"),
    "Another order already has this order_number.",
)
