"""Who a session's writes are made for, as the audit log records them (audit/service.py)."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

_ACTOR = "crm_api.actor"


@dataclass(frozen=True)
class Actor:
    api_key_id: uuid.UUID
    user_id: uuid.UUID | None
    request_id: str | None
    client_address: str | None
    operation: str | None


def act_for(session: AsyncSession, actor: Actor) -> None:
    """What this session changes from here on is audited as this actor's."""
    session.sync_session.info[_ACTOR] = actor


def actor_of(info: dict[str, object]) -> Actor | None:
    """The actor of a (sync) session, by its `info`; None for the worker's own changes."""
    actor = info.get(_ACTOR)
    return actor if isinstance(actor, Actor) else None
