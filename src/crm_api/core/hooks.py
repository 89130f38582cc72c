"""Deletion hooks: a domain whose records refer to another domain's records learns when one of
those is deleted, though the lower domain cannot import it (dependencies point one way).
A deal, say, is unlinked from a deleted company in the transaction that deletes the company."""

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.repository import repoint

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


# (session, workspace_id, merged ids, survivor id) → how many records now point at the survivor
MergeHook = Callable[[AsyncSession, uuid.UUID, Sequence[uuid.UUID], uuid.UUID], Awaitable[int]]
_MERGE_HOOKS: defaultdict[str, dict[str, MergeHook]] = defaultdict(dict)


def on_merge(noun: str, records: str) -> Callable[[MergeHook], MergeHook]:
    """Register a hook that re-points `records` (say "orders") from merged `noun`s to the one
    they were merged into, when they are merged."""

    def register(hook: MergeHook) -> MergeHook:
        _MERGE_HOOKS[noun][records] = hook
        return hook

    return register


async def merged(
    session: AsyncSession,
    noun: str,
    workspace_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    survivor_id: uuid.UUID,
) -> dict[str, int]:
    """Run every merge hook of `noun`: {records: how many were moved}."""
    return {
        records: await hook(session, workspace_id, merged_ids, survivor_id)
        for records, hook in sorted(_MERGE_HOOKS[noun].items())
    }


def repoint_on_merge(noun: str, records: str, model: Any, column: str) -> None:
    """The common merge hook: rows of `model` whose `column` names a merged `noun` are
    re-pointed at the survivor (core/repository.repoint)."""

    async def follow(
        session: AsyncSession,
        workspace_id: uuid.UUID,
        merged_ids: Sequence[uuid.UUID],
        survivor_id: uuid.UUID,
    ) -> int:
        return await repoint(session, model, column, workspace_id, merged_ids, survivor_id)

    on_merge(noun, records)(follow)
