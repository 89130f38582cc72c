import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from crm_api.core.pagination import Page
from crm_api.core.schemas import InputSchema, ListParams, ReadSchema, ShortText
from crm_api.core.scopes import Scope


class ApiKeyCreate(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [{"name": "ERP sync", "scopes": ["contacts:write", "companies:write"]}]
        }
    }

    name: ShortText
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(Scope))]
    user_id: uuid.UUID | None = Field(
        default=None,
        description="A user the key acts as: deals it creates are theirs unless told otherwise, "
        "and stage moves are recorded as theirs. The key stops working while the user is "
        "inactive.",
    )


class ApiKeyRead(ReadSchema):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[Scope]
    user_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown this once: store it now.")


class ApiKeyPage(Page[ApiKeyRead]):
    pass


class ApiKeyListParams(ListParams):
    pass
