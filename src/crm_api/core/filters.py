"""The filter language (DESIGN.md), shared by every `POST /v1/<resource>/search` and by dynamic
segments: a tree of `all` (AND) and `any` (OR) groups over conditions `{field, op, value}`.
Fields come from an allow-list per resource: its own columns, `custom_fields.<key>` typed by the
key's definition, and the fields of related records (`company.industry`), which compile to
EXISTS. Values are checked against the field's kind and always bound as parameters.

Null: a condition never matches a missing value, except the negative ones, which are exactly
the negation of their positive twin: `neq` (not `eq`), `nin` (not `in`), `is_null: true`."""

import operator
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Protocol

from pydantic import Discriminator, Field, Tag
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Numeric,
    Text,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    true,
)
from sqlalchemy import Uuid as UuidType
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

from crm_api.core.errors import InvalidInput
from crm_api.core.field_types import DATE_PATTERN, DATETIME_PATTERN, DECIMAL_PATTERN, FieldType
from crm_api.core.schemas import InputSchema, ListParams
from crm_api.core.search import escape_like

MAX_DEPTH = 4  # groups within groups
MAX_CONDITIONS = 50
MAX_LIST_VALUES = 500
MAX_TEXT_VALUE = 1_000


class FilterOp(StrEnum):
    eq = "eq"
    neq = "neq"
    lt = "lt"
    lte = "lte"
    gt = "gt"
    gte = "gte"
    in_ = "in"
    nin = "nin"
    contains = "contains"
    starts_with = "starts_with"
    is_null = "is_null"
    between = "between"


class Kind(StrEnum):
    """How a field compares: what values and operators it takes."""

    text = "text"
    number = "number"
    date = "date"
    datetime = "datetime"
    boolean = "boolean"
    id = "id"
    choice = "choice"  # text from a fixed list
    labels = "labels"  # a list of text: tags, multi_select


ORDERED = (FilterOp.eq, FilterOp.neq, FilterOp.lt, FilterOp.lte, FilterOp.gt, FilterOp.gte)
ANY_OF = (FilterOp.in_, FilterOp.nin, FilterOp.is_null)
OPERATORS: dict[Kind, tuple[FilterOp, ...]] = {
    Kind.text: (FilterOp.eq, FilterOp.neq, *ANY_OF, FilterOp.contains, FilterOp.starts_with),
    Kind.number: (*ORDERED, *ANY_OF, FilterOp.between),
    Kind.date: (*ORDERED, *ANY_OF, FilterOp.between),
    Kind.datetime: (*ORDERED, FilterOp.is_null, FilterOp.between),
    Kind.boolean: (FilterOp.eq, FilterOp.neq, FilterOp.is_null),
    Kind.id: (FilterOp.eq, FilterOp.neq, *ANY_OF),
    Kind.choice: (FilterOp.eq, FilterOp.neq, *ANY_OF),
    Kind.labels: (FilterOp.contains, *ANY_OF),
}
# One table for SQL expressions and plain values alike (columns overload the operators).
COMPARISONS: dict[FilterOp, Callable[[Any, Any], Any]] = {
    FilterOp.eq: operator.eq,
    FilterOp.lt: operator.lt,
    FilterOp.lte: operator.le,
    FilterOp.gt: operator.gt,
    FilterOp.gte: operator.ge,
}
# The negative operators, and the positive twin each negates.
NEGATIONS = {FilterOp.neq: FilterOp.eq, FilterOp.nin: FilterOp.in_}


class FilterCondition(InputSchema):
    field: str = Field(
        min_length=1, max_length=200, examples=["lifecycle_stage", "custom_fields.tier"]
    )
    op: FilterOp
    value: Any = Field(
        default=None,
        description="A value of the field's kind; a list for `in`/`nin`, [low, high] for "
        "`between` (both inclusive), true or false for `is_null`.",
    )


class FilterAll(InputSchema):
    all: list["FilterNode"] = Field(min_length=1, max_length=MAX_CONDITIONS)


class FilterAny(InputSchema):
    any: list["FilterNode"] = Field(min_length=1, max_length=MAX_CONDITIONS)


def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("all", "any"):
            if kind in value:
                return kind
        return "condition"
    if isinstance(value, FilterAll | FilterAny | FilterCondition):
        return {FilterAll: "all", FilterAny: "any", FilterCondition: "condition"}[type(value)]
    return None


FilterNode = Annotated[
    Annotated[FilterCondition, Tag("condition")]
    | Annotated[FilterAll, Tag("all")]
    | Annotated[FilterAny, Tag("any")],
    Discriminator(_node_kind),
]
Filter = Annotated[
    FilterNode,
    Field(
        description='`{"all": [...]}` (AND) or `{"any": [...]}` (OR) of conditions and groups, '
        f"at most {MAX_DEPTH} groups deep and {MAX_CONDITIONS} conditions in all; or one "
        "condition.",
        examples=[
            {
                "any": [
                    {
                        "all": [
                            {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
                            {"field": "company.industry", "op": "in", "value": ["Software"]},
                        ]
                    },
                    {"field": "tags", "op": "contains", "value": "vip"},
                ]
            }
        ],
    ),
]
FilterAll.model_rebuild()
FilterAny.model_rebuild()


class SearchParams(ListParams):
    """A search: a list request whose filter is in the body."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "filter": {
                        "all": [
                            {"field": "created_at", "op": "gte", "value": "2026-01-01T00:00:00Z"},
                            {"field": "tags", "op": "contains", "value": "vip"},
                        ]
                    },
                    "sort": "-created_at",
                    "limit": 50,
                }
            ]
        }
    }

    filter: Filter | None = Field(default=None, description="No filter: every record.")


@dataclass(frozen=True)
class FilterField:
    kind: Kind
    expression: Any  # a column or SQL expression of the filtered (or related) table
    choices: tuple[str, ...] = ()
    # What a related record that does not exist counts as (a contact with no orders has spent 0).
    missing: Any = None


@dataclass(frozen=True)
class Relation:
    """Another table's record the filtered one points at (or that points at it)."""

    fields: Mapping[str, FilterField]
    # EXISTS (the related record of this row, where the condition holds)
    exists: Callable[[ColumnElement[bool]], ColumnElement[bool]]


class Definition(Protocol):
    """A custom field's definition, as the filter needs it."""

    @property
    def type(self) -> str: ...

    @property
    def option_values(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class FilterFields:
    """What a resource may be filtered on."""

    fields: Mapping[str, FilterField]
    relations: Mapping[str, Relation] = field(default_factory=dict)
    custom_fields: Any = None  # the JSONB column, if the resource has custom fields

    def names(self) -> list[str]:
        related = [f"{r}.{name}" for r, rel in self.relations.items() for name in rel.fields]
        own = [*self.fields, *(["custom_fields.<key>"] if self.custom_fields is not None else [])]
        return sorted(own) + sorted(related)


Loc = tuple[str | int, ...]


def compile_filter(
    node: FilterCondition | FilterAll | FilterAny,
    allowed: FilterFields,
    definitions: Mapping[str, Definition],
    loc: Loc = ("body", "filter"),
) -> ColumnElement[bool]:
    """The SQL condition of a filter, or 422 naming the part that is wrong."""
    counted = _count_conditions(node, loc, depth=0)
    if counted > MAX_CONDITIONS:
        raise InvalidInput(loc, f"At most {MAX_CONDITIONS} conditions; this filter has {counted}.")
    return _Compiler(allowed, definitions).node(node, loc)


def condition_fields(node: FilterCondition | FilterAll | FilterAny) -> set[str]:
    if isinstance(node, FilterCondition):
        return {node.field}
    items = node.all if isinstance(node, FilterAll) else node.any
    return set().union(*(condition_fields(item) for item in items))


def _count_conditions(node: Any, loc: Loc, depth: int) -> int:
    if isinstance(node, FilterCondition):
        return 1
    if depth >= MAX_DEPTH:
        raise InvalidInput(loc, f"Groups may be nested at most {MAX_DEPTH} deep.")
    key = "all" if isinstance(node, FilterAll) else "any"
    items = node.all if isinstance(node, FilterAll) else node.any
    return sum(_count_conditions(item, (*loc, key, i), depth + 1) for i, item in enumerate(items))


class _Compiler:
    def __init__(self, allowed: FilterFields, definitions: Mapping[str, Definition]) -> None:
        self.allowed = allowed
        self.definitions = definitions

    def node(self, node: Any, loc: Loc) -> ColumnElement[bool]:
        if isinstance(node, FilterAll):
            return and_(*(self.node(n, (*loc, "all", i)) for i, n in enumerate(node.all)))
        if isinstance(node, FilterAny):
            return or_(*(self.node(n, (*loc, "any", i)) for i, n in enumerate(node.any)))
        return self.condition(node, loc)

    def condition(self, condition: FilterCondition, loc: Loc) -> ColumnElement[bool]:
        name = condition.field
        relation: Relation | None = None
        head, _, rest = name.partition(".")
        if head == "custom_fields" and self.allowed.custom_fields is not None and rest:
            target = self._custom_field(rest, (*loc, "field"))
        elif rest and head in self.allowed.relations:
            relation = self.allowed.relations[head]
            target = self._field(relation.fields, rest, name, (*loc, "field"))
        else:
            target = self._field(self.allowed.fields, name, name, (*loc, "field"))
        op = condition.op
        if op not in OPERATORS[target.kind]:
            allowed = ", ".join(o.value for o in OPERATORS[target.kind])
            raise InvalidInput(
                (*loc, "op"), f"`{name}` is {target.kind}: its operators are {allowed}."
            )
        value = _value(target, op, condition.value, (*loc, "value"))
        if relation is None:
            return _predicate(target, op, value)
        return _related(relation, target, op, value)

    def _field(
        self, fields: Mapping[str, FilterField], key: str, name: str, loc: Loc
    ) -> FilterField:
        if key not in fields:
            raise InvalidInput(
                loc,
                f"Cannot filter on `{name}`; the fields are: {', '.join(self.allowed.names())}.",
            )
        return fields[key]

    def _custom_field(self, key: str, loc: Loc) -> FilterField:
        definition = self.definitions.get(key)
        if definition is None:
            raise InvalidInput(loc, f"No custom field `{key}` is defined for this resource.")
        return custom_field_filter(
            self.allowed.custom_fields, key, FieldType(definition.type), definition.option_values
        )


def custom_field_filter(
    column: Any, key: str, type: FieldType, options: frozenset[str]
) -> FilterField:
    """A custom field as a typed SQL expression; a stored value that does not fit reads as
    missing rather than failing the query."""
    raw = column[key]
    text = column[key].astext
    if type in (FieldType.text, FieldType.email, FieldType.url):
        return FilterField(Kind.text, text)
    if type is FieldType.select:
        return FilterField(Kind.choice, text, tuple(sorted(options)))
    if type is FieldType.multi_select:
        return FilterField(Kind.labels, raw, tuple(sorted(options)))
    if type is FieldType.boolean:
        typed = case((func.jsonb_typeof(raw) == "boolean", text.cast(Boolean)))
        return FilterField(Kind.boolean, typed)
    if type is FieldType.number:
        return FilterField(
            Kind.number, case((func.jsonb_typeof(raw) == "number", text.cast(Numeric)))
        )
    pattern, kind, sql_type = {
        FieldType.decimal: (DECIMAL_PATTERN, Kind.number, Numeric()),
        FieldType.date: (DATE_PATTERN, Kind.date, Date()),
        FieldType.datetime: (DATETIME_PATTERN, Kind.datetime, DateTime(timezone=True)),
    }[type]
    return FilterField(kind, case((text.regexp_match(pattern.pattern), text.cast(sql_type))))


# Values


def _value(target: FilterField, op: FilterOp, value: Any, loc: Loc) -> Any:
    if op is FilterOp.is_null:
        if not isinstance(value, bool):
            raise InvalidInput(loc, "`is_null` takes true or false.")
        return value
    if op in (FilterOp.in_, FilterOp.nin):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_VALUES:
            raise InvalidInput(loc, f"`{op}` takes a list of 1 to {MAX_LIST_VALUES} values.")
        return [_scalar(target, item, (*loc, i)) for i, item in enumerate(value)]
    if op is FilterOp.between:
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidInput(loc, "`between` takes [low, high].")
        low, high = (_scalar(target, item, (*loc, i)) for i, item in enumerate(value))
        if low > high:
            raise InvalidInput(loc, "`between` takes [low, high] with low ≤ high.")
        return (low, high)
    if target.kind is Kind.labels or op in (FilterOp.contains, FilterOp.starts_with):
        return _scalar(FilterField(Kind.text, None, target.choices), value, loc)
    return _scalar(target, value, loc)


def _scalar(target: FilterField, value: Any, loc: Loc) -> Any:
    kind = target.kind
    try:
        if kind in (Kind.text, Kind.choice, Kind.labels) and isinstance(value, str):
            if len(value) > MAX_TEXT_VALUE:
                raise ValueError(f"at most {MAX_TEXT_VALUE} characters")
            if target.choices and value not in target.choices:
                raise ValueError(f"one of {', '.join(target.choices)}")
            return value
        if kind is Kind.number and _numeric(value):
            number = Decimal(str(value))
            if number.is_finite() and abs(number) < Decimal("1e30"):
                return number
        if kind is Kind.date and isinstance(value, str) and DATE_PATTERN.match(value):
            return date.fromisoformat(value)
        if kind is Kind.datetime and isinstance(value, str) and DATETIME_PATTERN.match(value):
            return datetime.fromisoformat(value)
        if kind is Kind.boolean and isinstance(value, bool):
            return value
        if kind is Kind.id and isinstance(value, str):
            return uuid.UUID(value)
    except (ValueError, InvalidOperation) as error:
        raise InvalidInput(loc, f"Expected a {kind} value: {error}.") from None
    raise InvalidInput(loc, f"Expected a {_describe(kind)}.")


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"-?[0-9]+([.][0-9]+)?", value) is not None
    )


def _describe(kind: Kind) -> str:
    return {
        Kind.text: "string",
        Kind.choice: "string",
        Kind.labels: "string",
        Kind.number: "number (or a decimal string)",
        Kind.date: "date, YYYY-MM-DD",
        Kind.datetime: "RFC 3339 date-time with offset",
        Kind.boolean: "true or false",
        Kind.id: "UUID",
    }[kind]


# SQL


def _sql_type(kind: Kind) -> TypeEngine[Any]:
    types: dict[Kind, TypeEngine[Any]] = {
        Kind.number: Numeric(),
        Kind.date: Date(),
        Kind.datetime: DateTime(timezone=True),
        Kind.boolean: Boolean(),
        Kind.id: UuidType(),
    }
    return types.get(kind, Text())


def _bind(target: FilterField, value: Any) -> Any:
    return bindparam(None, value, type_=_sql_type(target.kind))


def _predicate(target: FilterField, op: FilterOp, value: Any) -> ColumnElement[bool]:
    """The condition on a column of the row itself."""
    if op in NEGATIONS:
        return not_(func.coalesce(_predicate(target, NEGATIONS[op], value), false()))
    column: ColumnElement[Any] = target.expression
    if target.kind is Kind.labels:
        return _labels(target, op, value)
    if op is FilterOp.is_null:
        return column.is_(None) if value else column.is_not(None)
    if op is FilterOp.in_:
        items = bindparam(None, value, type_=ARRAY(_sql_type(target.kind)))
        return column == func.any(items)
    if op is FilterOp.between:
        return and_(column >= _bind(target, value[0]), column <= _bind(target, value[1]))
    if op is FilterOp.contains:
        return column.ilike("%" + escape_like(value) + "%", escape="\\")
    if op is FilterOp.starts_with:
        return column.ilike(escape_like(value) + "%", escape="\\")
    compared: ColumnElement[bool] = COMPARISONS[op](column, _bind(target, value))
    return compared


def _labels(target: FilterField, op: FilterOp, value: Any) -> ColumnElement[bool]:
    """A list of text: a Postgres text[] (tags) or a JSONB array (multi_select)."""
    column: Any = target.expression
    jsonb = not isinstance(column.type, ARRAY)
    if op is FilterOp.is_null:
        empty = (
            func.coalesce(func.jsonb_array_length(column), 0) == 0
            if jsonb
            else func.coalesce(func.cardinality(column), 0) == 0
        )
        return empty if value else not_(empty)
    values = [value] if op is FilterOp.contains else value
    items = bindparam(None, values, type_=ARRAY(Text()))
    found: ColumnElement[bool] = column.has_any(items) if jsonb else column.overlap(items)
    return found


def _related(
    relation: Relation, target: FilterField, op: FilterOp, value: Any
) -> ColumnElement[bool]:
    """A condition on a related record: it exists and the condition holds there. A negative
    condition is the negation of its twin; a field that counts a missing record as a value
    (`missing`) matches rows without one when that value would."""
    if op in NEGATIONS or (op is FilterOp.is_null and value):
        twin = NEGATIONS.get(op, FilterOp.is_null)
        return not_(_related(relation, target, twin, False if op is FilterOp.is_null else value))
    found = relation.exists(_predicate(target, op, value))
    if target.missing is not None and holds(op, target.missing, value):
        return or_(found, not_(relation.exists(true())))
    return found


def holds(op: FilterOp, actual: Any, value: Any) -> bool:
    """Whether a positive condition holds for a plain value (a missing record's `missing`)."""
    if op is FilterOp.is_null:
        return not value
    if op is FilterOp.in_:
        return bool(actual in value)
    if op is FilterOp.between:
        return bool(value[0] <= actual <= value[1])
    return bool(COMPARISONS[op](actual, value))


def search_description(allowed: FilterFields, note: str = "") -> str:
    """For the API docs: the filter language, and what a resource can be filtered on."""
    lines = []
    for name, spec in sorted(allowed.fields.items()):
        lines.append(f"`{name}` ({spec.kind})")
    for relation_name, relation in sorted(allowed.relations.items()):
        for name, spec in sorted(relation.fields.items()):
            lines.append(f"`{relation_name}.{name}` ({spec.kind})")
    if allowed.custom_fields is not None:
        lines.append("`custom_fields.<key>` (the kind its definition's type gives)")
    kinds = "; ".join(
        f"{kind}: {', '.join(o.value for o in ops)}" for kind, ops in OPERATORS.items()
    )
    return (
        "The filter is a tree of `all` (AND) and `any` (OR) groups of conditions "
        "`{field, op, value}`. A condition never matches a missing value, except `neq`, `nin` "
        "and `is_null: true`, which are exactly the negation of `eq`, `in` and `is_null: false`. "
        "`contains` and `starts_with` ignore case. A condition on a related record "
        "(`company.industry`) holds when that record exists and the condition holds there. "
        f"{note}Fields: {', '.join(lines)}. Operators by kind: {kinds}. The next page: the "
        "same body with `cursor` set to the `next_cursor` of this one."
    )


def record_fields(model: Any) -> dict[str, FilterField]:
    """The fields every record type has."""
    return {
        "id": FilterField(Kind.id, model.id),
        "external_id": FilterField(Kind.text, model.external_id),
        "tags": FilterField(Kind.labels, model.tags),
        "created_at": FilterField(Kind.datetime, model.created_at),
        "updated_at": FilterField(Kind.datetime, model.updated_at),
    }


def referenced(model: Any, workspace_id: Any, key: Any) -> Callable[..., ColumnElement[bool]]:
    """A Relation's EXISTS for the live `model` record that the row's `key` column names."""

    def exists_where(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(
            model.workspace_id == workspace_id,
            model.id == key,
            model.deleted_at.is_(None),
            condition,
        )

    return exists_where


def choice(expression: Any, values: type[StrEnum] | Sequence[str]) -> FilterField:
    return FilterField(Kind.choice, expression, tuple(str(getattr(v, "value", v)) for v in values))


def address_fields(column: Any) -> dict[str, FilterField]:
    return {
        f"address.{part}": FilterField(Kind.text, column[part].astext)
        for part in ("city", "region", "postal_code", "country")
    }
