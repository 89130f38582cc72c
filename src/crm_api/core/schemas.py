"""Base models and shared field types."""

import re
import types
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

# Free text: not blank (`\S` in the schema), limited as sent, stored without surrounding
# whitespace. The limits apply to the value as sent, so validation is exactly what the published
# schema says (schemathesis holds us to it).
NOT_BLANK = r"\S"


def _strip(value: str) -> str:
    # Python strips more than JSON Schema's `\S` calls space (U+001C-U+001F, for one).
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


Stripped = AfterValidator(_strip)
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK), Stripped
]
LongText = Annotated[
    str, StringConstraints(min_length=1, max_length=5000, pattern=NOT_BLANK), Stripped
]
Key = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
    Field(
        description="Your stable name for it: lower-case letters, digits, `-` and `_`; what is "
        "recorded refers to it.",
        examples=["gold"],
    ),
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NOT_BLANK), Stripped]
PostalCode = Annotated[
    str, StringConstraints(min_length=1, max_length=20, pattern=NOT_BLANK), Stripped
]
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[^/\s]+$"),
    Field(description="Your system's id for this record; unique per workspace and resource."),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NOT_BLANK), Stripped]
Tags = Annotated[list[Tag], Field(max_length=50, description="Free labels, at most 50.")]
CountryCode = Annotated[
    str,
    StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    Field(description="ISO 3166-1 alpha-2 country code."),
]
CustomFields = Annotated[
    dict[str, Any],
    Field(
        max_length=100,
        description="Your own fields, as a JSON object (at most 100 keys). Each key written must "
        "be defined for the resource at /v1/custom-fields and its value must fit the type (422 "
        "naming the key); `null` removes a key.",
        examples=[{"loyalty_id": "LX-1002", "vip": True}],
    ),
]


# Money: decimal strings in and out, never binary floats (DESIGN.md: stored as NUMERIC).
MoneyAmount = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,15}([.][0-9]{1,4})?$"),
    Field(description="A decimal string, at most 4 decimal places.", examples=["12500.00"]),
]
CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 currency code.", examples=["EUR"]),
]


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 9 and 9.0, but not "9" or true (which Pydantic would take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    return int(value)


# Use as Annotated[int, Field(...), JsonInteger]: constraints first, so they stay JSON Schema.
JsonInteger = BeforeValidator(_json_integer)


def _decimal_text(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


DecimalText = Annotated[str, BeforeValidator(_decimal_text)]


def _as_utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("out of range once converted to UTC") from None


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    """Pydantic would read a number, or a string of one, as a Unix timestamp; the API takes
    ISO 8601 text only, as its schema says."""
    if isinstance(value, datetime | date) or (
        isinstance(value, str) and not _NUMBER.fullmatch(value)
    ):
        return value
    raise ValueError("expected an ISO 8601 string such as 2026-11-23 or 2026-11-23T08:00:00Z")


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_as_utc),
    Field(description="RFC 3339; without an offset, UTC."),
]
IsoDate = Annotated[date, BeforeValidator(_iso_text)]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone such as `Europe/Berlin`") from None
    return name


TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_zone)]


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _no_nul(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold U+0000; refuse it here with a clear message."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain the NUL character (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


class InputSchema(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped; no NUL characters."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def refuse_nul(cls, value: Any) -> Any:
        return _no_nul(value)


def unique_tags(tags: list[str]) -> list[str]:
    """Tags compared case-insensitively; the first spelling wins, order kept."""
    seen: set[str] = set()
    result = []
    for tag in tags:
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            result.append(tag)
    return result


class Address(InputSchema):
    line1: ShortText | None = None
    line2: ShortText | None = None
    city: Label | None = None
    region: Label | None = None
    postal_code: PostalCode | None = None
    country: CountryCode | None = None


PhoneInput = Annotated[
    str,
    StringConstraints(min_length=3, max_length=40, pattern=r"^[0-9+()./\- ]+$"),
    Field(
        description="Any common notation; stored in E.164. Without a `+` country code the "
        "workspace's default country is assumed.",
        examples=["+14155550123"],
    ),
]


class ListParams(InputSchema):
    """Query parameters every list endpoint shares; unknown parameters are an error."""

    limit: int = Field(default=50, ge=1, le=500, description="Page size, 1 to 500.")
    cursor: str | None = Field(
        default=None, max_length=2048, description="`next_cursor` of the previous page."
    )
    sort: str | None = Field(
        default=None,
        max_length=200,
        description="Comma-separated fields; a leading `-` sorts descending. Default `created_at`.",
        examples=["-created_at"],
    )

    def filters(self) -> dict[str, Any]:
        """The parameters that select rows, which a cursor is bound to."""
        return self.model_dump(exclude={"limit", "cursor", "sort"}, exclude_none=True)


class RecordListParams(ListParams):
    """The filters every record list shares (core/repository.py: record_filters)."""

    tag: Tag | None = None
    external_id: ExternalId | None = None
    created_after: UtcDatetime | None = Field(default=None, description="created_at ≥ this.")
    created_before: UtcDatetime | None = Field(default=None, description="created_at < this.")
    updated_after: UtcDatetime | None = Field(default=None, description="updated_at ≥ this.")
    updated_before: UtcDatetime | None = Field(default=None, description="updated_at < this.")


class OwnedRecordListParams(RecordListParams):
    """…and those of records with an owner."""

    owner_id: uuid.UUID | None = None


def bare_type(annotation: Any) -> Any:
    """The type inside Optional[...] and Annotated[...] (for code that reads schemas)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation
