"""Imports: a file is read and checked when it is uploaded and its rows are stored in chunks;
the worker (or `crm-api import`) then applies one chunk per transaction, so a chunk is applied
exactly once even when workers stop midway, and each row whole or not at all."""

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.actors import Actor, act_for
from crm_api.core.auth import Principal, principal_of_key
from crm_api.core.db import new_id
from crm_api.core.errors import Conflict, Forbidden, InvalidInput, ProblemError
from crm_api.core.pagination import SortField, make_page, page_request
from crm_api.core.records import get_or_404, list_records
from crm_api.core.tenancy import enter_workspace, leave_workspace
from crm_api.core.writes import Written
from crm_api.imports.files import (
    CHUNK_ROWS,
    FileProblem,
    ParsedRow,
    chunks,
    read_csv,
    read_ndjson,
)
from crm_api.imports.models import Import, ImportRowError
from crm_api.imports.repository import (
    ERROR_LINE_SORT,
    IMPORT_ID_SORT,
    IMPORT_SORTS,
    ImportRepository,
)
from crm_api.imports.schemas import (
    ImportErrorListParams,
    ImportFormat,
    ImportListParams,
    ImportResource,
    ImportStatus,
    import_read,
)
from crm_api.imports.targets import (
    TARGETS,
    ColumnsOf,
    ImportTarget,
    RowProblem,
    auto_mapping,
    mapping_problems,
    row_fields,
    validate_row,
)
from crm_api.webhooks.events import emit

FORMAT_OF_SUFFIX = {".csv": ImportFormat.csv, ".ndjson": ImportFormat.ndjson}
FORMAT_OF_SUFFIX[".jsonl"] = ImportFormat.ndjson
FINAL = (ImportStatus.completed, ImportStatus.cancelled)


def _format_of(filename: str | None, given: ImportFormat | None) -> ImportFormat:
    if given is not None:
        return given
    for suffix, format in FORMAT_OF_SUFFIX.items():
        if filename and filename.lower().endswith(suffix):
            return format
    raise InvalidInput(
        ("body", "format"), "Say the file's format (csv or ndjson): its name does not tell."
    )


def _checked_mapping(
    target: ImportTarget, columns: Sequence[str], given: dict[str, str] | None
) -> dict[str, str]:
    mapping = auto_mapping(target, columns) if given is None else given
    missing = sorted(set(mapping) - set(columns))
    if missing:
        raise InvalidInput(("body", "mapping"), f"The file has no column {', '.join(missing)}.")
    problems = mapping_problems(target, mapping)
    if problems:
        raise InvalidInput(("body", "mapping"), " ".join(problems))
    if not mapping:
        raise InvalidInput(
            ("body", "mapping"),
            f"No column of the file names a {target.noun} field; send a mapping.",
        )
    return mapping


def _parse_error(record: Import, row: ParsedRow) -> dict[str, Any]:
    return {
        "workspace_id": record.workspace_id,
        "import_id": record.id,
        "line": row.line,
        "status": 422,
        "title": "Unreadable row",
        "detail": row.problem,
        "errors": [],
        "values": None,
    }


async def create_import(
    session: AsyncSession,
    principal: Principal,
    *,
    resource: ImportResource,
    file: IO[bytes],
    filename: str | None = None,
    format: ImportFormat | None = None,
    mapping: dict[str, str] | None = None,
    delimiter: str | None = None,
) -> Import:
    """Read the whole file (a row that cannot be read is a row error; a file that cannot be read
    is a 422) and queue it for the worker."""
    target = TARGETS[resource]
    if not principal.has(target.write_scope):
        raise Forbidden(
            f"Importing {resource} needs the `{target.write_scope}` scope.",
            required_scope=target.write_scope,
        )
    format = _format_of(filename, format)
    repository = ImportRepository(session)
    record = Import(
        id=new_id(),
        workspace_id=principal.workspace_id,
        resource=str(resource),
        format=str(format),
        filename=filename,
        status=ImportStatus.queued,
        mapping={},
        ignored_columns=[],
        api_key_id=principal.api_key_id,
        user_id=principal.user_id,
        rows_total=0,
        rows_processed=0,
        created_count=0,
        updated_count=0,
        unchanged_count=0,
        failed_count=0,
    )
    repository.add(record)
    await session.flush()
    try:
        read = read_csv(file, delimiter) if format is ImportFormat.csv else read_ndjson(file)
        if format is ImportFormat.csv:
            record.mapping = _checked_mapping(target, read.columns, mapping)
        total = unreadable = position = 0
        # Parsing is CPU work: done off the event loop, a chunk at a time.
        pending = chunks(read.rows)
        while (chunk := await asyncio.to_thread(next, pending, None)) is not None:
            readable = [[row.line, row.cells] for row in chunk if row.cells is not None]
            await repository.add_chunk(record.workspace_id, record.id, position, readable)
            errors = [_parse_error(record, row) for row in chunk if row.cells is None]
            await repository.add_errors(errors)
            total += len(chunk)
            unreadable += len(errors)
            position += 1
    except FileProblem as error:
        raise InvalidInput(("body", "file"), str(error)) from None
    if format is ImportFormat.ndjson:
        read.columns = sorted(read.seen_columns)
        record.mapping = _checked_mapping(target, read.columns, mapping)
    if total == 0:
        raise InvalidInput(("body", "file"), "The file has no rows.")
    record.ignored_columns = [c for c in read.columns if c not in record.mapping]
    record.rows_total = total
    record.rows_processed = record.failed_count = unreadable
    await session.flush()
    _announce(session, "created", record)
    return record


def _announce(session: AsyncSession, action: str, record: Import) -> None:
    emit(session, record.workspace_id, f"import.{action}", import_read(record))


async def get_import(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Import:
    return await get_or_404(ImportRepository(session), principal.workspace_id, id, "import")


async def list_imports(
    session: AsyncSession, principal: Principal, params: ImportListParams
) -> tuple[list[Import], str | None]:
    repository = ImportRepository(session)
    where = repository.list_filters(params)
    return await list_records(
        repository, principal.workspace_id, params, where, IMPORT_SORTS, IMPORT_ID_SORT,
        default_sort="-created_at",
    )  # fmt: skip


async def list_import_errors(
    session: AsyncSession, principal: Principal, id: uuid.UUID, params: ImportErrorListParams
) -> tuple[list[ImportRowError], str | None]:
    record = await get_import(session, principal, id)
    sorts: dict[str, SortField] = {"line": ERROR_LINE_SORT}
    page = page_request(
        sort="line",
        allowed_sorts=sorts,
        id_field=ERROR_LINE_SORT,
        filters={"import": str(id)},
        cursor=params.cursor,
        limit=params.limit,
    )
    return make_page(await ImportRepository(session).error_page(record, page), page)


async def cancel_import(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Import:
    """Stop applying rows: those applied stay, the rest are dropped. Waits for a chunk being
    applied to finish."""
    record = await get_or_404(
        ImportRepository(session), principal.workspace_id, id, "import", for_update=True
    )
    if record.status in FINAL:
        raise Conflict(f"The import is {record.status} already.", status_now=record.status)
    await _finish(session, record, ImportStatus.cancelled)
    return record


async def _finish(session: AsyncSession, record: Import, status: ImportStatus) -> None:
    await ImportRepository(session).drop_chunks(record)
    record.status = status
    record.finished_at = datetime.now(UTC)
    record.updated_at = record.finished_at
    await session.flush()
    _announce(session, str(status), record)


async def run_import_step(session: AsyncSession, workspace_id: uuid.UUID, id: uuid.UUID) -> bool:
    """One step of this import (`crm-api import` drives its import with these); False once
    it is finished."""
    record = await ImportRepository(session).get(workspace_id, id, for_update=True)
    if record is None or record.status in FINAL:
        return False
    await apply_next_chunk(session, record)
    return True


async def run_waiting_imports(session: AsyncSession, now: datetime) -> int:
    """The worker's task: one chunk of the oldest import no other worker holds."""
    record = await ImportRepository(session).claim_waiting()
    if record is None:
        return 0
    return await apply_next_chunk(session, record)


async def apply_next_chunk(session: AsyncSession, record: Import) -> int:
    """Apply the import's next chunk of rows (the import is locked by the caller); finish the
    import when none is left. How many rows it applied, or 1 for finishing."""
    target = TARGETS[record.resource]
    principal = None
    if record.api_key_id is not None:
        principal = await principal_of_key(session, record.workspace_id, record.api_key_id)
    if principal is None or not principal.has(target.write_scope):
        # The key was revoked, or lost the scope: nothing more is applied in its name.
        await _finish(session, record, ImportStatus.cancelled)
        return 1
    rows = await ImportRepository(session).take_next_chunk(record)
    if rows is None:
        await _finish(session, record, ImportStatus.completed)
        return 1
    if record.status == ImportStatus.queued:
        record.status = ImportStatus.running
        record.started_at = datetime.now(UTC)
    before = record.rows_processed
    # The rows are applied as a request of the key would be: under row-level security, in the
    # workspace, held to the key's own records if it is (core/tenancy.py); ANALYZE after is the
    # owner's.
    await enter_workspace(session, record.workspace_id, principal.owner_ids)
    act_for(session, Actor(principal.api_key_id, principal.user_id, None, None, "imports_apply"))
    await _apply_rows(session, principal, record, target, rows)
    await leave_workspace(session)
    if statistics_due(before, record.rows_processed):
        await ImportRepository(session).analyze(target.tables)
    record.updated_at = datetime.now(UTC)
    await session.flush()
    return len(rows)


def statistics_due(before: int, after: int) -> bool:
    """Whether the tables an import fills need fresh planner statistics: after 1,000 rows, then
    each time the rows applied grow fourfold. A large import into a new workspace otherwise
    runs on statistics that say the workspace is empty, and its lookups scan the workspace."""
    threshold = CHUNK_ROWS
    while threshold <= after:
        if before < threshold:
            return True
        threshold *= 4
    return False


async def _apply_rows(
    session: AsyncSession,
    principal: Principal,
    record: Import,
    target: ImportTarget,
    rows: list[Any],
) -> None:
    columns = ColumnsOf(record.mapping)
    from_csv = record.format == ImportFormat.csv
    problems: dict[int, ProblemError] = {}
    fields: dict[int, dict[str, Any]] = {}
    for index, (_, cells) in enumerate(rows):
        try:
            fields[index] = row_fields(target, record.mapping, cells, from_csv)
        except RowProblem as problem:
            problems[index] = problem
    await _resolve_references(session, principal, target, fields, columns, problems)
    valid = []
    for index, values in fields.items():
        if index in problems:
            continue
        try:
            valid.append((index, validate_row(target, values, columns)))
        except RowProblem as problem:
            problems[index] = problem
    outcomes: dict[int, Any] = {**problems, **await target.apply(session, principal, valid)}
    errors = []
    for index, (line, cells) in enumerate(rows):
        outcome = outcomes[index]
        if isinstance(outcome, Written):
            if outcome.created:
                record.created_count += 1
            elif outcome.changes:
                record.updated_count += 1
            else:
                record.unchanged_count += 1
            continue
        record.failed_count += 1
        errors.append(
            {
                "workspace_id": record.workspace_id,
                "import_id": record.id,
                "line": line,
                "status": outcome.status,
                "title": outcome.title,
                "detail": outcome.detail or outcome.title,
                "errors": columns.problem_errors(outcome),
                "values": cells,
            }
        )
    await ImportRepository(session).add_errors(errors)
    record.rows_processed += len(rows)


async def _resolve_references(
    session: AsyncSession,
    principal: Principal,
    target: ImportTarget,
    fields: dict[int, dict[str, Any]],
    columns: ColumnsOf,
    problems: dict[int, ProblemError],
) -> None:
    """Replace each reference (`contact_email`) by the id field it stands for, one query per
    reference for the whole chunk."""
    for reference in target.references:
        given = {i: str(f.pop(reference.name)) for i, f in fields.items() if reference.name in f}
        if not given:
            continue
        found = await reference.lookup(session, principal.workspace_id, sorted(set(given.values())))
        for index, value in given.items():
            if value in found:
                fields[index][reference.field] = str(found[value])
            elif index not in problems:
                msg = f"No {reference.description} is `{value}`."
                problems[index] = RowProblem(
                    msg,
                    errors=[
                        {"loc": columns.loc([reference.name]), "msg": msg, "type": "reference"}
                    ],
                )
