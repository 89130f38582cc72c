import json
import uuid
from typing import Annotated

from fastapi import Depends, File, Form, Path, Query, Request, Response, UploadFile

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import InvalidInput, problem_responses
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import LINK_HEADER, LOCATION_HEADER
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.imports import service
from crm_api.imports.schemas import (
    ImportErrorListParams,
    ImportFormat,
    ImportListParams,
    ImportPage,
    ImportRead,
    ImportResource,
    ImportRowErrorPage,
    ImportRowErrorRead,
    import_read,
)

router = domain_router("imports")

Reader = Annotated[Principal, Depends(require_scope(Scope.imports_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.imports_write))]
ImportId = Annotated[uuid.UUID, Path(description="The import's id.")]

MAPPING_HELP = (
    'A JSON object: column of the file → field of the record, e.g. `{"E-mail": "email", '
    '"Town": "address.city", "Tier": "custom_fields.tier"}`. Columns left out are ignored. '
    "Without it, columns named like a field (any case) map to it."
)


def _mapping(raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        mapping = json.loads(raw)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InvalidInput(
            ("body", "mapping"), "Must be a JSON object of column names to field names."
        )
    return mapping


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportRead,
    responses={202: {"headers": LOCATION_HEADER}, **problem_responses(409, 413)},
    summary="Import a CSV or NDJSON file of contacts, companies or orders",
    description=(
        "The file is read and checked now; its rows are applied in the background (follow "
        "`/v1/imports/{id}`). Each row updates the record it names, by `external_id`, else by "
        "email then phone (contacts), domain (companies) or `order_number` (orders), or creates "
        "one; a row is applied whole or not at all, and a rejected row is listed at "
        "`/v1/imports/{id}/errors` with its line. CSV: the first line names the columns; an "
        "empty cell changes nothing; list fields (tags) are separated by `;`; an object field "
        "is a JSON cell, or one column per key (`address.city`). Orders may name their contact "
        "by `contact_external_id` or `contact_email`, and contacts and orders their company by "
        "`company_external_id`. Needs the resource's write scope too."
    ),
)
async def imports_create(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
    file: Annotated[UploadFile, File(description="The CSV (UTF-8) or NDJSON file.")],
    resource: Annotated[ImportResource, Form(description="What the rows are.")],
    mapping: Annotated[str | None, Form(description=MAPPING_HELP)] = None,
    format: Annotated[
        ImportFormat | None, Form(description="Default: from the file name (.csv, .ndjson).")
    ] = None,
    delimiter: Annotated[
        str | None,
        Form(
            min_length=1,
            max_length=1,
            description="CSV cell separator; default: whichever of , ; tab | the header has most.",
        ),
    ] = None,
) -> ImportRead:
    record = await service.create_import(
        session,
        principal,
        resource=resource,
        file=file.file,
        filename=file.filename,
        format=format,
        mapping=_mapping(mapping),
        delimiter=delimiter,
    )
    response.headers["Location"] = str(request.url_for("imports_get", import_id=record.id))
    return import_read(record)


@router.get(
    "/imports",
    response_model=ImportPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List imports, newest first",
)
async def imports_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[ImportListParams, Query()],
) -> ImportPage:
    rows, next_cursor = await service.list_imports(session, principal, params)
    set_link_header(request, response, next_cursor)
    return ImportPage(data=[import_read(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/imports/{import_id}",
    response_model=ImportRead,
    responses=problem_responses(404),
    summary="Get an import and its progress",
)
async def imports_get(import_id: ImportId, session: DbSession, principal: Reader) -> ImportRead:
    return import_read(await service.get_import(session, principal, import_id))


@router.get(
    "/imports/{import_id}/errors",
    response_model=ImportRowErrorPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List the rows an import rejected, by line",
)
async def imports_errors(
    import_id: ImportId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[ImportErrorListParams, Query()],
) -> ImportRowErrorPage:
    rows, next_cursor = await service.list_import_errors(session, principal, import_id, params)
    set_link_header(request, response, next_cursor)
    return ImportRowErrorPage(
        data=[ImportRowErrorRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/imports/{import_id}/cancel",
    response_model=ImportRead,
    responses=problem_responses(404, 409),
    summary="Stop an import: rows applied stay, the rest are dropped",
)
async def imports_cancel(
    import_id: ImportId,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> ImportRead:
    return import_read(await service.cancel_import(session, principal, import_id))
