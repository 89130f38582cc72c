from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, WorkspaceScopedMixin
from crm_api.core.errors import register_constraint
from crm_api.core.field_types import CustomFieldResource

LIVE = text("deleted_at IS NULL")


class CustomFieldDefinition(WorkspaceScopedMixin, Base):
    """What one key of a resource's `custom_fields` holds; writes are checked against it."""

    __tablename__ = "custom_field_definitions"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index(
            "uq_custom_field_definitions_workspace_id_resource_key",
            "workspace_id",
            "resource",
            "key",
            unique=True,
            postgresql_where=LIVE,
        ),
    )

    resource: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    # Selects: [{"value": "gold", "label": "Gold"}, …] in the order they are shown.
    options: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    required: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    description: Mapped[str | None] = mapped_column(Text, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def resource_enum(self) -> CustomFieldResource:
        return CustomFieldResource(self.resource)

    @property
    def option_values(self) -> frozenset[str]:
        return frozenset(option["value"] for option in self.options)


register_constraint(
    "uq_custom_field_definitions_workspace_id_resource_key",
    409,
    ("body", "key"),
    "A custom field with this key is already defined for the resource.",
)
