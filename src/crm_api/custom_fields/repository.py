import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import TableClause, column, select, table
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Session

from crm_api.core.field_types import CustomFieldResource
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.custom_fields.models import CustomFieldDefinition

CUSTOM_FIELD_ID_SORT = SortField(CustomFieldDefinition.id, uuid.UUID)
CUSTOM_FIELD_SORTS = {
    "created_at": SortField(CustomFieldDefinition.created_at, datetime),
    "key": SortField(CustomFieldDefinition.key, str),
}
# How many distinct stored values a type change looks at in one round trip.
VALUES_BATCH = 1_000


def _records(resource: CustomFieldResource) -> TableClause:
    """The resource's table, as far as its custom fields go (this domain imports no other)."""
    return table(
        resource.value,
        column("workspace_id", UUID(as_uuid=True)),
        column("id", UUID(as_uuid=True)),
        column("custom_fields", JSONB),
        column("deleted_at"),
    )


def definitions_statement(workspace_id: uuid.UUID, resources: Sequence[str]) -> Any:
    return select(CustomFieldDefinition).where(
        CustomFieldDefinition.workspace_id == workspace_id,
        CustomFieldDefinition.resource.in_(resources),
        CustomFieldDefinition.deleted_at.is_(None),
    )


def load_definitions(
    session: Session, workspace_id: uuid.UUID, resources: Sequence[str]
) -> list[CustomFieldDefinition]:
    """For the flush-time check, which runs in the synchronous session."""
    return list(session.execute(definitions_statement(workspace_id, resources)).scalars())


class CustomFieldRepository(Repository[CustomFieldDefinition]):
    model = CustomFieldDefinition

    async def for_resource(
        self, workspace_id: uuid.UUID, resource: CustomFieldResource
    ) -> dict[str, CustomFieldDefinition]:
        statement = definitions_statement(workspace_id, [resource.value])
        return {d.key: d for d in (await self.session.execute(statement)).scalars()}

    async def stored_values(
        self, workspace_id: uuid.UUID, resource: CustomFieldResource, key: str
    ) -> Any:
        """Every distinct value live records hold for the key, a batch at a time."""
        records = _records(resource)
        value = records.c.custom_fields[key]
        statement = (
            select(value)
            .distinct()
            .where(
                records.c.workspace_id == workspace_id,
                records.c.deleted_at.is_(None),
                records.c.custom_fields.has_key(key),
            )
            .execution_options(yield_per=VALUES_BATCH)
        )
        return await self.session.stream_scalars(statement)

    async def record_holding(
        self, workspace_id: uuid.UUID, resource: CustomFieldResource, key: str, value: Any
    ) -> uuid.UUID | None:
        records = _records(resource)
        statement = (
            select(records.c.id)
            .where(
                records.c.workspace_id == workspace_id,
                records.c.deleted_at.is_(None),
                records.c.custom_fields.contains({key: value}),
            )
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()
