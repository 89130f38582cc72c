import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.auth import Principal
from crm_api.core.db import WorkspaceScopedMixin
from crm_api.core.errors import Conflict, InvalidInput
from crm_api.core.field_types import CustomFieldResource, FieldType, UnfitValue, check_value
from crm_api.core.filters import (
    FilterAll,
    FilterAny,
    FilterCondition,
    FilterFields,
    SearchParams,
    compile_filter,
    condition_fields,
)
from crm_api.core.pagination import SortField
from crm_api.core.patch import Changes, assign
from crm_api.core.records import bump_version, get_or_404, list_records, soft_delete
from crm_api.core.repository import Repository
from crm_api.custom_fields.models import CustomFieldDefinition
from crm_api.custom_fields.repository import (
    CUSTOM_FIELD_ID_SORT,
    CUSTOM_FIELD_SORTS,
    CustomFieldRepository,
)
from crm_api.custom_fields.schemas import (
    SELECT_TYPES,
    CustomFieldCreate,
    CustomFieldListParams,
    CustomFieldOption,
    CustomFieldRead,
    CustomFieldUpdate,
)
from crm_api.custom_fields.validation import forget_definitions
from crm_api.webhooks.events import emit

W = TypeVar("W", bound=WorkspaceScopedMixin)


def _announce(
    session: AsyncSession,
    action: str,
    definition: CustomFieldDefinition,
    changes: Changes | None = None,
) -> None:
    data = CustomFieldRead.model_validate(definition)
    emit(session, definition.workspace_id, f"custom_field.{action}", data, changes=changes)


def _stored_options(options: list[CustomFieldOption]) -> list[dict[str, Any]]:
    return [{"value": o.value, "label": o.label or o.value} for o in options]


def _check_options(type: FieldType, options: list[dict[str, Any]]) -> None:
    if type in SELECT_TYPES and not options:
        raise InvalidInput(("body", "options"), f"A {type} field needs at least one option.")
    if type not in SELECT_TYPES and options:
        raise InvalidInput(("body", "options"), f"Only select fields have options, not {type}.")


async def _ensure_values_fit(
    repository: CustomFieldRepository, definition: CustomFieldDefinition
) -> None:
    """409 when a live record holds a value the definition would not accept."""
    resource = definition.resource_enum
    options = definition.option_values
    stream = await repository.stored_values(definition.workspace_id, resource, definition.key)
    async for value in stream:
        try:
            check_value(FieldType(definition.type), options, value)
        except UnfitValue as unfit:
            record_id = await repository.record_holding(
                definition.workspace_id, resource, definition.key, value
            )
            await stream.close()
            raise Conflict(
                f"The {resource} {record_id} holds {value!r} in `{definition.key}`, which a "
                f"{definition.type} field would not accept ({unfit}) Change or clear it first.",
                record_id=str(record_id),
            ) from None


async def create_custom_field(
    session: AsyncSession, principal: Principal, data: CustomFieldCreate
) -> CustomFieldDefinition:
    repository = CustomFieldRepository(session)
    definition = CustomFieldDefinition(
        workspace_id=principal.workspace_id,
        resource=data.resource.value,
        key=data.key,
        label=data.label,
        type=data.type.value,
        options=_stored_options(data.options or []),
        required=bool(data.required),
        description=data.description,
    )
    _check_options(data.type, definition.options)
    # Values stored before the field was defined must fit it too.
    await _ensure_values_fit(repository, definition)
    repository.add(definition)
    await session.flush()
    forget_definitions(session)
    _announce(session, "created", definition)
    return definition


async def get_custom_field(
    session: AsyncSession, principal: Principal, id: uuid.UUID
) -> CustomFieldDefinition:
    return await get_or_404(
        CustomFieldRepository(session), principal.workspace_id, id, "custom field"
    )


async def list_custom_fields(
    session: AsyncSession, principal: Principal, params: CustomFieldListParams
) -> tuple[list[CustomFieldDefinition], str | None]:
    where = []
    if params.resource is not None:
        where.append(CustomFieldDefinition.resource == params.resource.value)
    return await list_records(
        CustomFieldRepository(session),
        principal.workspace_id,
        params,
        where,
        CUSTOM_FIELD_SORTS,
        CUSTOM_FIELD_ID_SORT,
    )


async def update_custom_field(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: CustomFieldUpdate,
    if_match: str | None,
) -> CustomFieldDefinition:
    repository = CustomFieldRepository(session)
    definition = await get_or_404(
        repository, principal.workspace_id, id, "custom field", for_update=True, if_match=if_match
    )
    sent = data.model_fields_set
    for field in ("label", "type", "required"):
        if field in sent and getattr(data, field) is None:
            raise InvalidInput(("body", field), "May not be null.")
    changes: Changes = {}
    for field in ("label", "required", "description"):
        if field in sent:
            assign(definition, changes, field, getattr(data, field))
    if "type" in sent:
        assign(definition, changes, "type", data.type.value)
    if "options" in sent:
        assign(definition, changes, "options", _stored_options(data.options or []))
    _check_options(FieldType(definition.type), definition.options)
    removed_options = "options" in changes and not (
        {o["value"] for o in changes["options"][0]} <= definition.option_values
    )
    if "type" in changes or removed_options:
        await _ensure_values_fit(repository, definition)
    bump_version(definition, changes)
    await session.flush()
    forget_definitions(session)
    if changes:
        _announce(session, "updated", definition, changes)
    return definition


async def delete_custom_field(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    """Records keep the values they hold; the key can no longer be written or filtered on."""
    definition = await get_or_404(
        CustomFieldRepository(session),
        principal.workspace_id,
        id,
        "custom field",
        for_update=True,
        if_match=if_match,
    )
    soft_delete(definition)
    await session.flush()
    forget_definitions(session)
    _announce(session, "deleted", definition)


async def filter_condition(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    resource: CustomFieldResource,
    filter: FilterCondition | FilterAll | FilterAny | None,
    allowed: FilterFields,
    loc: tuple[str | int, ...] = ("body", "filter"),
) -> list[ColumnElement[bool]]:
    """A search's filter as SQL, typed by the resource's custom field definitions."""
    if filter is None:
        return []
    definitions: dict[str, CustomFieldDefinition] = {}
    if any(name.startswith("custom_fields.") for name in condition_fields(filter)):
        definitions = await CustomFieldRepository(session).for_resource(workspace_id, resource)
    return [compile_filter(filter, allowed, definitions, loc)]


async def search_records(
    repository: Repository[W],
    workspace_id: uuid.UUID,
    params: SearchParams,
    resource: CustomFieldResource,
    allowed: FilterFields,
    sorts: Mapping[str, SortField],
    id_sort: SortField,
    default_sort: str = "created_at",
) -> tuple[list[W], str | None]:
    """One page of a `POST /v1/<resource>/search`."""
    where = await filter_condition(
        repository.session, workspace_id, resource, params.filter, allowed
    )
    return await list_records(
        repository, workspace_id, params, where, sorts, id_sort, source="body",
        default_sort=default_sort,
    )  # fmt: skip
