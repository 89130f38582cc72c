"""`Idempotency-Key` on POST: the first successful response is stored with the change it made and
replayed for the same key; the same key with another request is 422, one still running is 409."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from sqlalchemy import Integer, LargeBinary, Text, delete, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.datastructures import UploadFile

from crm_api.core.auth import Principal, authenticate
from crm_api.core.db import Base, DbSession
from crm_api.core.errors import ProblemError
from crm_api.settings import get_settings

REPLAYED_HEADER = "Idempotent-Replayed"
_STORED_HEADERS = ("content-type", "location", "etag", "link")


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class IdempotencyKeyInUse(ProblemError):
    status, slug, title = 409, "idempotency-key-in-use", "Idempotency key in use"


class IdempotencyKeyMismatch(ProblemError):
    status, slug, title = 422, "idempotency-key-mismatch", "Idempotency key reused"


class IdempotentReplay(Exception):
    """Short-circuits the endpoint: the stored response is sent instead."""

    def __init__(self, record: IdempotencyRecord) -> None:
        self.record = record

    def response(self) -> Response:
        headers = dict(self.record.response_headers)
        headers[REPLAYED_HEADER] = "true"
        return Response(
            content=self.record.response_body,
            status_code=self.record.response_status,
            headers=headers,
        )


@dataclass(frozen=True)
class PendingIdempotency:
    workspace_id: uuid.UUID
    key: str
    request_hash: str


async def _request_hash(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        # Parsed already (FastAPI reads forms before dependencies); a retry has another
        # boundary, so the fields and files are what is compared.
        for name, value in (await request.form()).multi_items():
            digest.update(f"{name}\n".encode())
            if isinstance(value, UploadFile):
                await value.seek(0)
                while chunk := await value.read(1024 * 1024):
                    digest.update(chunk)
                await value.seek(0)
            else:
                digest.update(value.encode())
        return digest.hexdigest()
    body = await request.body()
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest.update(canonical)
    return digest.hexdigest()


def _lock_id(workspace_id: uuid.UUID, key: str) -> int:
    digest = hashlib.sha256(workspace_id.bytes + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def idempotency_key(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(authenticate)],
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes a retried POST safe: the first response is replayed for 24 h. "
            "1 to 255 visible ASCII characters, e.g. a UUID; the quoted form is accepted too.",
            pattern=r"^[!-~]{1,255}$",
            examples=["8e03978e-40d5-43e8-bc93-6894a57f9324"],
        ),
    ] = None,
) -> None:
    if key is None:
        return
    key = key.removeprefix('"').removesuffix('"') or key  # also the structured-field form
    request_hash = await _request_hash(request)
    # Held until this transaction ends, so a concurrent retry sees the key in use.
    locked = await session.scalar(
        select(func.pg_try_advisory_xact_lock(_lock_id(principal.workspace_id, key)))
    )
    if not locked:
        raise IdempotencyKeyInUse("A request with this key is still being processed; retry later.")
    ttl = timedelta(hours=get_settings().idempotency_ttl_hours)
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.workspace_id == principal.workspace_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at > func.now() - ttl,
        )
    )
    if record is not None:
        if record.request_hash != request_hash:
            raise IdempotencyKeyMismatch(
                "This key was used for another request; use a new key for a new request."
            )
        raise IdempotentReplay(record)
    request.state.idempotency = PendingIdempotency(principal.workspace_id, key, request_hash)


async def store_response(
    session: AsyncSession, pending: PendingIdempotency, response: Response
) -> None:
    headers = {k: v for k, v in response.headers.items() if k in _STORED_HEADERS}
    values = {
        "request_hash": pending.request_hash,
        "response_status": response.status_code,
        "response_headers": headers,
        "response_body": bytes(response.body),
        "created_at": func.now(),
    }
    statement = insert(IdempotencyRecord).values(
        workspace_id=pending.workspace_id, key=pending.key, **values
    )
    # An expired record of the same key is replaced.
    await session.execute(
        statement.on_conflict_do_update(index_elements=["workspace_id", "key"], set_=values)
    )


IdempotencyKey = Depends(idempotency_key)


async def prune_idempotency_records(session: AsyncSession, older_than: timedelta) -> int:
    """Drop records no replay can use any more (the worker runs this now and then)."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < func.now() - older_than)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
