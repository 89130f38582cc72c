import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field

from crm_api.core.pagination import Page
from crm_api.core.roles import Role
from crm_api.core.schemas import (
    ExternalId,
    InputSchema,
    ListParams,
    LongText,
    ReadSchema,
    ShortText,
    UtcDatetime,
)


def _lower(value: str) -> str:
    return value.lower()


UserEmail = Annotated[
    EmailStr,
    AfterValidator(_lower),
    Field(description="Stored lower-case; unique among the workspace's users."),
]
UserIds = Annotated[
    list[uuid.UUID], Field(max_length=500, description="Every member; replaces the list.")
]


class UserFields(InputSchema):
    email: UserEmail | None = None
    title: Annotated[ShortText, Field(examples=["Account Executive"])] | None = None
    active: bool | None = Field(
        default=None,
        description="An inactive user keeps the records they own, cannot be given new ones, and "
        "API keys acting as them stop working. New users are active.",
    )
    role: Role | None = Field(
        default=None,
        description="What API keys acting as the user may do at most: the role's scopes "
        "(see `POST /v1/api-keys`). None: whatever the key may. Set by admins only (403).",
    )
    own_records_only: bool | None = Field(
        default=None,
        description="A sales or support user who sees only the contacts, deals and tickets they "
        "or a team of theirs own, and gives them to no one else; held by the database itself. "
        "Set by admins only (403).",
    )


class UserCreate(UserFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Grace Hopper",
                    "email": "grace@acme.com",
                    "title": "Account Executive",
                    "external_id": "HR-0042",
                }
            ]
        }
    }

    name: ShortText
    external_id: ExternalId | None = None


class UserUpdate(UserFields):
    """Only the fields sent change; `null` clears a field."""

    model_config = {"json_schema_extra": {"examples": [{"title": "Sales Manager"}]}}

    name: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class UserUpsert(UserFields):
    """Upsert by the external id in the path (your HR or identity system's id): creates the user
    with these fields (`name` is required then) or updates them."""

    model_config = {
        "json_schema_extra": {"examples": [{"name": "Grace Hopper", "email": "grace@acme.com"}]}
    }

    name: ShortText = None  # type: ignore[assignment]


class UserRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    name: str
    email: str | None
    title: str | None
    active: bool
    role: Role | None
    own_records_only: bool
    created_at: datetime
    updated_at: datetime
    version: int


class UserListParams(ListParams):
    q: str | None = Field(
        default=None, min_length=1, max_length=200, description="Words found in name or email."
    )
    email: UserEmail | None = None
    active: bool | None = None
    team_id: uuid.UUID | None = Field(default=None, description="Members of this team.")
    external_id: ExternalId | None = None
    created_after: UtcDatetime | None = Field(default=None, description="created_at ≥ this.")
    created_before: UtcDatetime | None = Field(default=None, description="created_at < this.")


class UserPage(Page[UserRead]):
    pass


class TeamFields(InputSchema):
    description: LongText | None = None
    member_ids: UserIds | None = None


class TeamCreate(TeamFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "EMEA Sales",
                    "description": "New business in Europe",
                    "member_ids": ["0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10"],
                }
            ]
        }
    }

    name: ShortText
    external_id: ExternalId | None = None


class TeamUpdate(TeamFields):
    """Only the fields sent change; `member_ids` replaces the whole list."""

    model_config = {"json_schema_extra": {"examples": [{"description": "Renewals, all regions"}]}}

    name: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class TeamRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    name: str
    description: str | None
    member_ids: list[uuid.UUID] = Field(description="The team's users, oldest member first.")
    created_at: datetime
    updated_at: datetime
    version: int


class TeamListParams(ListParams):
    member_id: uuid.UUID | None = Field(default=None, description="Teams this user belongs to.")


class TeamPage(Page[TeamRead]):
    pass
