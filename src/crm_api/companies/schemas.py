import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    Address,
    CustomFields,
    ExternalId,
    InputSchema,
    Label,
    OwnedRecordListParams,
    PhoneInput,
    ReadSchema,
    ShortText,
    Tags,
    unique_tags,
)


class CompanyType(StrEnum):
    customer = "customer"
    partner = "partner"
    supplier = "supplier"
    prospect = "prospect"


class CompanySize(StrEnum):
    """Employees: micro < 10, small < 50, medium < 250, large < 1000, enterprise ≥ 1000."""

    micro = "micro"
    small = "small"
    medium = "medium"
    large = "large"
    enterprise = "enterprise"


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$"
)


def _bare_domain(value: Any) -> Any:
    """`https://www.Acme.com/about` → `acme.com`."""
    if not isinstance(value, str):
        return value
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", value.strip()).split("/")[0].lower()
    return host.removeprefix("www.")


def _valid_domain(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError("not a domain name such as `acme.com`")
    return value


Domain = Annotated[
    str,
    BeforeValidator(_bare_domain),
    AfterValidator(_valid_domain),
    Field(description="The company's web domain; a URL is reduced to it.", examples=["acme.com"]),
]
Industry = Label


class CompanyFields(InputSchema):
    domain: Domain | None = None
    industry: Industry | None = None
    size: CompanySize | None = None
    type: CompanyType | None = None
    phone: PhoneInput | None = None
    address: Address | None = None
    tags: Annotated[Tags, AfterValidator(unique_tags)] | None = None
    custom_fields: CustomFields | None = None
    owner_id: uuid.UUID | None = None


class CompanyCreate(CompanyFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Acme Corporation",
                    "domain": "acme.com",
                    "type": "customer",
                    "industry": "Manufacturing",
                    "size": "medium",
                    "tags": ["key-account"],
                    "external_id": "ERP-10042",
                }
            ]
        }
    }

    name: ShortText
    external_id: ExternalId | None = None


class CompanyUpdate(CompanyFields):
    """Only the fields sent change; `null` clears a field; objects merge (RFC 7396)."""

    model_config = {
        "json_schema_extra": {"examples": [{"size": "large", "tags": ["key-account", "emea"]}]}
    }

    # Optional but not nullable: a company always has a name.
    name: ShortText = None  # type: ignore[assignment]
    external_id: ExternalId | None = None


class CompanyUpsert(CompanyFields):
    """Upsert by the external id in the path: creates the company with these fields (`name` is
    required then) or updates them."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"name": "Acme Corporation", "domain": "acme.com", "type": "customer"}]
        }
    }

    name: ShortText = None  # type: ignore[assignment]


class CompanyRead(ReadSchema):
    id: uuid.UUID
    external_id: str | None
    name: str
    domain: str | None
    industry: str | None
    size: CompanySize | None
    type: CompanyType | None
    phone: str | None
    address: Address | None
    tags: list[str]
    custom_fields: dict[str, Any]
    owner_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


class CompanyListParams(OwnedRecordListParams):
    q: str | None = Field(
        default=None, min_length=1, max_length=200, description="Words found in name or domain."
    )
    domain: Domain | None = None
    type: CompanyType | None = None
    size: CompanySize | None = None
    industry: Industry | None = None


class CompanyPage(Page[CompanyRead]):
    pass
