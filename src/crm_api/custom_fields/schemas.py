import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from crm_api.core.field_types import CustomFieldResource, FieldType
from crm_api.core.pagination import Page
from crm_api.core.schemas import InputSchema, Label, ListParams, LongText, ReadSchema, ShortText

CustomFieldKey = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(
        description="The key in `custom_fields`: lowercase letters, digits and `_`, starting "
        "with a letter, at most 63 characters. It cannot be changed.",
        examples=["loyalty_tier"],
    ),
]
SELECT_TYPES = (FieldType.select, FieldType.multi_select)


class CustomFieldOption(InputSchema):
    value: Label
    label: ShortText | None = Field(default=None, description="Shown to people; default: value.")


def _distinct_values(options: list[CustomFieldOption]) -> list[CustomFieldOption]:
    values = [option.value for option in options]
    if len(values) != len(set(values)):
        raise ValueError("Option values must be distinct.")
    return options


Options = Annotated[
    list[CustomFieldOption],
    Field(max_length=500, description="The choices of a select or multi_select, in order."),
    AfterValidator(_distinct_values),
]


class CustomFieldFields(InputSchema):
    description: LongText | None = None
    options: Options | None = None
    required: bool | None = Field(
        default=None,
        description="Records created from now on must have a value, and no write may remove "
        "it. Records that already lack it are not touched.",
    )


class CustomFieldCreate(CustomFieldFields):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "resource": "contacts",
                    "key": "loyalty_tier",
                    "label": "Loyalty tier",
                    "type": "select",
                    "options": [{"value": "gold"}, {"value": "silver"}],
                }
            ]
        }
    }

    resource: CustomFieldResource
    key: CustomFieldKey
    label: ShortText
    type: FieldType


class CustomFieldUpdate(CustomFieldFields):
    """Only the fields sent change. A new `type` or fewer `options` must fit every value the
    resource's records hold for the key (409 otherwise)."""

    model_config = {"json_schema_extra": {"examples": [{"label": "Tier", "required": True}]}}

    label: ShortText = None  # type: ignore[assignment]
    type: FieldType = None  # type: ignore[assignment]


class CustomFieldOptionRead(ReadSchema):
    value: str
    label: str


class CustomFieldRead(ReadSchema):
    id: uuid.UUID
    resource: CustomFieldResource
    key: str
    label: str
    type: FieldType
    options: list[CustomFieldOptionRead]
    required: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class CustomFieldListParams(ListParams):
    resource: CustomFieldResource | None = None


class CustomFieldPage(Page[CustomFieldRead]):
    pass
