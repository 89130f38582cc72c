"""What each importable resource takes: its fields (a file's columns map to them), the
references a row may give by another system's keys, and how its rows are applied. Mapping a
file's cells onto a record's fields is pure and lives here too."""

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.models import Company
from crm_api.companies.repository import CompanyRepository
from crm_api.companies.schemas import CompanyUpdate
from crm_api.companies.service import import_companies
from crm_api.contacts.models import Contact, ContactEmail
from crm_api.contacts.repository import ContactRepository
from crm_api.contacts.schemas import ContactUpdate
from crm_api.contacts.service import import_contacts
from crm_api.core.auth import Principal
from crm_api.core.errors import InvalidData, ProblemError
from crm_api.core.repository import Repository
from crm_api.core.schemas import bare_type
from crm_api.core.scopes import Scope
from crm_api.core.writes import RowOutcome
from crm_api.orders.models import Order, OrderLine
from crm_api.orders.schemas import OrderUpdate
from crm_api.orders.service import import_orders

LIST_SEPARATOR = ";"


class FieldKind(StrEnum):
    text = "text"  # one cell's text
    list = "list"  # items separated by `;` in a CSV cell
    json = "json"  # a JSON object or array in a CSV cell, or a column per key (`address.city`)


@cache
def field_kinds(schema: type[BaseModel]) -> dict[str, FieldKind]:
    kinds = {}
    for name, info in schema.model_fields.items():
        bare = bare_type(info.annotation)
        origin = get_origin(bare)
        if origin is list:
            item = bare_type(get_args(bare)[0])
            nested = isinstance(item, type) and issubclass(item, BaseModel)
            kinds[name] = FieldKind.json if nested else FieldKind.list
        elif origin is dict or (isinstance(bare, type) and issubclass(bare, BaseModel)):
            kinds[name] = FieldKind.json
        else:
            kinds[name] = FieldKind.text
    return kinds


def _keys_of(schema: type[BaseModel], field: str) -> set[str] | None:
    """The keys a JSON field has (None: any key, as custom_fields)."""
    bare = bare_type(schema.model_fields[field].annotation)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return set(bare.model_fields)
    return None if get_origin(bare) is dict else set()


# (workspace_id, values) → {value: id of the live record that has it}
ReferenceLookup = Callable[[AsyncSession, uuid.UUID, Sequence[str]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Reference:
    """A column naming a related record by another key (`contact_email`), resolved to the id
    field the API takes (`contact_id`) before the row is applied."""

    name: str
    field: str
    description: str
    lookup: ReferenceLookup


@dataclass(frozen=True)
class ImportTarget:
    resource: str
    noun: str
    write_scope: Scope
    schema: type[BaseModel]
    references: tuple[Reference, ...]
    apply: Callable[
        [AsyncSession, Principal, Sequence[tuple[int, Any]]], Awaitable[dict[int, RowOutcome]]
    ]
    # The tables its rows fill, whose statistics are kept fresh during a large import.
    tables: tuple[str, ...]

    @property
    def kinds(self) -> dict[str, FieldKind]:
        return field_kinds(self.schema)

    def check_path(self, path: str) -> str | None:
        """Why `path` names no field of this resource (None when it does)."""
        references = {reference.name for reference in self.references}
        field, _, key = path.partition(".")
        if path in references or (field in self.kinds and not key):
            return None
        if field in self.kinds and self.kinds[field] is FieldKind.json:
            keys = _keys_of(self.schema, field)
            if keys is None or key in keys:
                return None
            return f"`{field}` has the keys {', '.join(sorted(keys))}."
        names = sorted({*self.kinds, *references})
        return f"No {self.noun} field `{path}`; the fields are {', '.join(names)}."


def _ids_by_external_id(repository: Callable[[AsyncSession], Repository[Any]]) -> ReferenceLookup:
    async def lookup(
        session: AsyncSession, workspace_id: uuid.UUID, values: Sequence[str]
    ) -> dict[str, Any]:
        found = await repository(session).get_by_external_ids(workspace_id, values)
        return {value: record.id for value, record in found.items()}

    return lookup


async def _contacts_by_email(
    session: AsyncSession, workspace_id: uuid.UUID, values: Sequence[str]
) -> dict[str, Any]:
    holders = await ContactRepository(session).by_emails(workspace_id, [v.lower() for v in values])
    return {value: holders[value.lower()][0].id for value in values if value.lower() in holders}


COMPANY_BY_EXTERNAL_ID = Reference(
    "company_external_id",
    "company_id",
    "the company's external_id",
    _ids_by_external_id(CompanyRepository),
)
TARGETS = {
    "contacts": ImportTarget(
        "contacts",
        "contact",
        Scope.contacts_write,
        ContactUpdate,
        (COMPANY_BY_EXTERNAL_ID,),
        import_contacts,
        (Contact.__tablename__, ContactEmail.__tablename__),
    ),
    "companies": ImportTarget(
        "companies",
        "company",
        Scope.companies_write,
        CompanyUpdate,
        (),
        import_companies,
        (Company.__tablename__,),
    ),
    "orders": ImportTarget(
        "orders",
        "order",
        Scope.orders_write,
        OrderUpdate,
        (
            Reference(
                "contact_external_id",
                "contact_id",
                "the contact's external_id",
                _ids_by_external_id(ContactRepository),
            ),
            Reference("contact_email", "contact_id", "an email of the contact", _contacts_by_email),
            COMPANY_BY_EXTERNAL_ID,
        ),
        import_orders,
        (Order.__tablename__, OrderLine.__tablename__),
    ),
}


def auto_mapping(target: ImportTarget, columns: Sequence[str]) -> dict[str, str]:
    """Columns named like a field (any case; spaces and dashes as underscores) map to it."""
    mapping = {}
    for column in columns:
        path = column.strip().lower().replace(" ", "_").replace("-", "_")
        if target.check_path(path) is None:
            mapping[column] = path
    return mapping


def mapping_problems(target: ImportTarget, mapping: Mapping[str, str]) -> list[str]:
    problems = [
        f"{column}: {why}" for column, path in mapping.items() if (why := target.check_path(path))
    ]
    seen: dict[str, str] = {}
    for column, path in mapping.items():
        for other_path, other in seen.items():
            if (
                path == other_path
                or path.startswith(other_path + ".")
                or other_path.startswith(path + ".")
            ):
                problems.append(f"{column} and {other} both set `{path.partition('.')[0]}`.")
        seen[path] = column
    return problems


class RowProblem(InvalidData):
    """A row that cannot be turned into the record's fields."""


def row_fields(
    target: ImportTarget, mapping: Mapping[str, str], cells: Mapping[str, Any], from_csv: bool
) -> dict[str, Any]:
    """The fields a row sets: its mapped cells, nested by dotted paths. An empty CSV cell sets
    nothing; CSV lists are split on `;`, JSON fields parsed."""
    kinds = target.kinds
    fields: dict[str, Any] = {}
    for column, path in mapping.items():
        if column not in cells:
            continue
        value = cells[column]
        field, _, key = path.partition(".")
        if from_csv:
            value = value.strip()
            if value == "":
                continue
            kind = kinds.get(field, FieldKind.text)
            if kind is FieldKind.list and not key:
                value = [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]
            elif kind is FieldKind.json and not key:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise RowProblem(
                        f"Column {column} must hold JSON.",
                        errors=[{"loc": ["row", column], "msg": "not valid JSON", "type": "json"}],
                    ) from None
        if key:
            fields.setdefault(field, {})[key] = value
        else:
            fields[path] = value
    return fields


def validate_row(target: ImportTarget, fields: dict[str, Any], columns: "ColumnsOf") -> BaseModel:
    try:
        return target.schema.model_validate(fields)
    except ValidationError as error:
        errors = [
            {"loc": columns.loc(list(e["loc"])), "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in errors)
        raise RowProblem(detail, errors=errors) from None


class ColumnsOf:
    """Maps a field's location back to the column of the file it came from."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.by_path = {path: column for column, path in mapping.items()}

    def loc(self, loc: Sequence[str | int]) -> list[str | int]:
        if loc and loc[0] == "row":
            return list(loc)
        parts = [part for part in loc if part != "body"]
        for size in range(len(parts), 0, -1):
            path = ".".join(str(p) for p in parts[:size])
            if path in self.by_path:
                return ["row", self.by_path[path], *parts[size:]]
        return ["row", *parts]

    def problem_errors(self, problem: ProblemError) -> list[dict[str, Any]]:
        return [
            {**error, "loc": self.loc(error.get("loc", []))}
            for error in problem.extensions.get("errors", [])
        ]
