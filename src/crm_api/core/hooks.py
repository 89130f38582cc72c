"""Deletion hooks: a domain whose records refer to another domain's records learns when one of
those is deleted, though the lower domain cannot import it (dependencies point one way).
A deal, say, is unlinked from a deleted company in the transaction that deletes the company."""

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

DeletionHook = Callable[[AsyncSession, uuid.UUID, uuid.UUID], Awaitable[None]]
_HOOKS: defaultdict[str, list[DeletionHook]] = defaultdict(list)


def on_delete(noun: str) -> Callable[[DeletionHook], DeletionHook]:
    """Register `hook(session, workspace_id, record_id)` to run when a `noun` is deleted."""

    def register(hook: DeletionHook) -> DeletionHook:
        _HOOKS[noun].append(hook)
        return hook

    return register


async def deleted(
    session: AsyncSession, noun: str, workspace_id: uuid.UUID, record_id: uuid.UUID
) -> None:
    for hook in _HOOKS[noun]:
        await hook(session, workspace_id, record_id)
