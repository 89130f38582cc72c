"""Cursor pagination: sort specs, opaque cursors bound to their query, keyset predicates."""

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, or_, tuple_
from sqlalchemy.orm import QueryableAttribute

from crm_api.core.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class SortField:
    """A field clients may sort on: its SQL expression, selected beside each row so the cursor
    holds exactly the values the database compared."""

    expression: ColumnElement[Any] | QueryableAttribute[Any]
    kind: type  # str, int, datetime, date, Decimal or uuid.UUID: how a cursor value is decoded


@dataclass(frozen=True)
class SortKey:
    field: SortField
    descending: bool


@dataclass(frozen=True)
class PageRequest:
    """A validated list request: the keyset order and where the previous page ended."""

    order: tuple[SortKey, ...]
    after: tuple[Any, ...] | None
    limit: int
    fingerprint: str


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")]
CursorParam = Annotated[
    str | None,
    Query(max_length=2048, description="`next_cursor` of the previous page."),
]
SortParam = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Comma-separated fields; a leading `-` sorts descending.",
        examples=["-created_at"],
    ),
]


def parse_sort(
    raw: str | None,
    allowed: Mapping[str, SortField],
    id_field: SortField,
    source: str = "query",
    default: str = "created_at",
) -> tuple[tuple[SortKey, ...], str]:
    """`-created_at,name` → keys, always ending with the id so the order is total."""
    text = raw or default
    keys: list[SortKey] = []
    seen: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        name = part.removeprefix("-")
        if name not in allowed:
            raise InvalidInput(
                (source, "sort"),
                f"Cannot sort by `{name}`; allowed: {', '.join(sorted(allowed))}.",
            )
        if name in seen:
            raise InvalidInput((source, "sort"), f"`{name}` appears twice in sort.")
        seen.add(name)
        keys.append(SortKey(allowed[name], part.startswith("-")))
    keys.append(SortKey(id_field, keys[0].descending))
    return tuple(keys), text


def fingerprint(sort_text: str, filters: Mapping[str, Any]) -> str:
    """Binds a cursor to the sort and filters it was made for."""
    canonical = json.dumps([sort_text, sorted(filters.items())], default=str, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def page_request(
    *,
    sort: str | None,
    allowed_sorts: Mapping[str, SortField],
    id_field: SortField,
    filters: Mapping[str, Any],
    cursor: str | None,
    limit: int,
    source: str = "query",
    default_sort: str = "created_at",
) -> PageRequest:
    """`source` is where sort and cursor were sent: the query, or the body of a search;
    `default_sort` is the order without a `sort`."""
    order, sort_text = parse_sort(sort, allowed_sorts, id_field, source, default_sort)
    print_ = fingerprint(sort_text, filters)
    after = decode_cursor(cursor, order, print_, source) if cursor else None
    return PageRequest(order=order, after=after, limit=limit, fingerprint=print_)


def encode_cursor(values: Sequence[Any], print_: str) -> str:
    payload = json.dumps({"v": [_dump(v) for v in values], "f": print_}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str, order: Sequence[SortKey], print_: str, source: str = "query"
) -> tuple[Any, ...]:
    invalid = InvalidInput((source, "cursor"), "The cursor is malformed.")
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        values, made_for = raw["v"], raw["f"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid from None
    if made_for != print_:
        raise InvalidInput(
            (source, "cursor"),
            "The cursor belongs to a request with other filters or sort; start again without it.",
        )
    if not isinstance(values, list) or len(values) != len(order):
        raise invalid
    try:
        return tuple(_load(v, key.field.kind) for v, key in zip(values, order, strict=True))
    except (ValueError, TypeError, InvalidOperation):
        raise invalid from None


def _dump(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


def _load(value: Any, kind: type) -> Any:
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is Decimal:
        if not isinstance(value, str):
            raise TypeError(value)
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(value)
        return number
    if not isinstance(value, kind):
        raise TypeError(value)
    return value


def keyset_after(order: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in `order`; one row comparison when all keys share a direction
    (index-friendly), the expanded OR of prefixes otherwise."""
    if len({key.descending for key in order}) == 1:
        left = tuple_(*(key.field.expression for key in order))
        right = tuple_(*values)
        return left < right if order[0].descending else left > right
    clauses = []
    for i, key in enumerate(order):
        equal_prefix = [order[j].field.expression == values[j] for j in range(i)]
        step = (
            key.field.expression < values[i] if key.descending else key.field.expression > values[i]
        )
        clauses.append(and_(*equal_prefix, step))
    return or_(*clauses)


def order_by(order: Sequence[SortKey]) -> list[ColumnElement[Any]]:
    return [
        key.field.expression.desc() if key.descending else key.field.expression.asc()
        for key in order
    ]


def make_page(
    rows: Sequence[tuple[T, tuple[Any, ...]]], page: PageRequest
) -> tuple[list[T], str | None]:
    """Rows (record, sort values) were fetched with limit + 1: the extra one only tells that
    there is a next page."""
    records = [record for record, _ in rows[: page.limit]]
    if len(rows) <= page.limit:
        return records, None
    return records, encode_cursor(rows[page.limit - 1][1], page.fingerprint)


def set_link_header(request: Request, response: Response, next_cursor: str | None) -> None:
    """RFC 8288 `Link: <…>; rel="next"`."""
    if next_cursor is not None:
        url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
