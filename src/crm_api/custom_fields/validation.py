"""Every write of `custom_fields`, whichever path it takes (create, update, upsert, batch,
import, merge), is checked at flush against the workspace's definitions: each key written must
be defined and its value must fit the type; required keys must be given on create and may not
be removed. Definitions are loaded once per transaction and resource."""

import uuid
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from crm_api.core.errors import InvalidInput
from crm_api.core.field_types import CustomFieldResource, FieldType, UnfitValue, check_value
from crm_api.custom_fields.models import CustomFieldDefinition
from crm_api.custom_fields.repository import load_definitions

_CACHE = "crm_api.custom_field_definitions"
_RESOURCES = frozenset(resource.value for resource in CustomFieldResource)

Definitions = dict[str, CustomFieldDefinition]


def forget_definitions(session: AsyncSession) -> None:
    """After a definition changes, the transaction's next write reads them again."""
    session.sync_session.info.pop(_CACHE, None)


def _definitions(session: Session, workspace_id: uuid.UUID, resource: str) -> Definitions:
    cache: dict[tuple[uuid.UUID, str], Definitions] = session.info.setdefault(_CACHE, {})
    if (workspace_id, resource) not in cache:
        with session.no_autoflush:
            found = load_definitions(session, workspace_id, [resource])
        cache[(workspace_id, resource)] = {d.key: d for d in found}
    return cache[(workspace_id, resource)]


def _written(record: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(before, after) of a record's custom fields when this flush writes them."""
    history = inspect(record).attrs.custom_fields.history
    if not history.has_changes():
        return None
    before = history.deleted[0] if history.deleted else {}
    return before or {}, record.custom_fields or {}


def check_custom_fields(
    definitions: Definitions, before: dict[str, Any], after: dict[str, Any], created: bool
) -> None:
    for key, value in after.items():
        if key in before and before[key] == value:
            continue
        definition = definitions.get(key)
        if definition is None:
            raise InvalidInput(
                ("body", "custom_fields", key),
                f"No custom field `{key}` is defined for this resource; define it at "
                "/v1/custom-fields first.",
            )
        try:
            check_value(FieldType(definition.type), definition.option_values, value)
        except UnfitValue as unfit:
            raise InvalidInput(("body", "custom_fields", key), str(unfit)) from None
    for key, definition in definitions.items():
        if definition.required and after.get(key) is None and (created or key in before):
            raise InvalidInput(("body", "custom_fields", key), f"`{key}` is required.")


@event.listens_for(Session, "before_flush")
def _check_before_flush(session: Session, _: UOWTransaction, __: Any) -> None:
    for record in (*session.new, *session.dirty):
        resource = getattr(record, "__tablename__", None)
        if resource not in _RESOURCES:
            continue
        created = record in session.new
        written = _written(record) if not created else ({}, record.custom_fields or {})
        if written is None:
            continue
        before, after = written
        definitions = _definitions(session, record.workspace_id, resource)
        check_custom_fields(definitions, before, after, created)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CACHE, None)
