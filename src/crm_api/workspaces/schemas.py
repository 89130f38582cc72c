import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, computed_field

from crm_api.core.pagination import Page
from crm_api.core.roles import ROLES_DESCRIPTION, Role, key_scopes
from crm_api.core.schemas import (
    CountryCode,
    InputSchema,
    ListParams,
    ReadSchema,
    ShortText,
    TimeZoneName,
)
from crm_api.core.scopes import Scope


class ApiKeyCreate(InputSchema):
    """A role, scopes, or both: the key may do what its role's scopes and its own allow."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "ERP sync", "role": "integration"},
                {"name": "Lead form", "scopes": ["contacts:write"]},
            ]
        }
    }

    name: ShortText
    role: Role | None = Field(default=None, description=ROLES_DESCRIPTION)
    scopes: Annotated[list[Scope], Field(max_length=len(Scope))] = Field(
        default_factory=list, description="Scopes besides the role's (or instead of a role)."
    )
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
    role: Role | None
    scopes: list[Scope] = Field(description="The scopes it was given besides its role's.")

    @computed_field(description="Everything the key may do: its role's scopes and its own.")  # type: ignore[prop-decorator]
    @property
    def effective_scopes(self) -> list[Scope]:
        return sorted(Scope(s) for s in key_scopes(self.role, self.scopes))

    user_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown this once: store it now.")


class ApiKeyPage(Page[ApiKeyRead]):
    pass


class ApiKeyListParams(ListParams):
    pass


class WorkspaceRead(ReadSchema):
    id: uuid.UUID
    name: str
    default_country: str | None = Field(
        description="ISO 3166 alpha-2: phone numbers written without a country code are read "
        "as this country's."
    )
    time_zone: str = Field(
        description="IANA name: the day on which birthdays and anniversaries fall."
    )
    created_at: datetime
    updated_at: datetime


class WorkspaceUpdate(InputSchema):
    model_config = {"json_schema_extra": {"examples": [{"time_zone": "Europe/Berlin"}]}}

    name: ShortText | None = None
    default_country: CountryCode | None = None
    time_zone: TimeZoneName | None = Field(default=None, examples=["Europe/Berlin"])
