import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from crm_api.core.pagination import Page
from crm_api.core.schemas import ListParams, ReadSchema, ShortText, UtcDatetime


class AuditEntryRead(ReadSchema):
    id: uuid.UUID
    occurred_at: datetime = Field(validation_alias="created_at")
    api_key_id: uuid.UUID | None = Field(description="The key that made the change.")
    user_id: uuid.UUID | None = Field(description="The user the key acted as, if any.")
    request_id: str | None = Field(description="The request's X-Request-ID.")
    client_address: str | None = Field(description="Where the request came from.")
    operation: str | None = Field(
        description="The operation called (its operationId), e.g. `contacts_update`; "
        "`imports_apply` for rows an import applied in the key's name.",
        examples=["contacts_update"],
    )
    resource: str = Field(examples=["contact"])
    resource_id: uuid.UUID | None
    action: str = Field(examples=["updated"])
    changes: dict[str, Any] | None = Field(
        description="`{field: {old, new}}`: every field an update changed, a creation's "
        "values as `new`, a deletion's as `old`. Secrets (signing secrets, keys) are masked."
    )
    event_id: uuid.UUID = Field(description="The event that announced the change.")


class AuditPage(Page[AuditEntryRead]):
    pass


class AuditListParams(ListParams):
    resource: ShortText | None = Field(default=None, examples=["contact"])
    resource_id: uuid.UUID | None = None
    action: ShortText | None = Field(default=None, examples=["deleted"])
    api_key_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    request_id: ShortText | None = None
    occurred_after: UtcDatetime | None = Field(default=None, description="occurred_at ≥ this.")
    occurred_before: UtcDatetime | None = Field(default=None, description="occurred_at < this.")
