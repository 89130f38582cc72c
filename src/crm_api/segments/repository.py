import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import UUID, insert

from crm_api.contacts.models import Contact
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.segments.models import Segment, SegmentMember, StaleContact

SEGMENT_ID_SORT = SortField(Segment.id, uuid.UUID)
SEGMENT_SORTS = {
    "created_at": SortField(Segment.created_at, datetime),
    "name": SortField(func.crm_fold(Segment.name), str),
}
_UUID = UUID(as_uuid=True)


def live_contacts(
    workspace_id: uuid.UUID, where: Sequence[ColumnElement[bool]]
) -> Select[uuid.UUID]:
    return select(Contact.id).where(
        Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None), *where
    )


class SegmentRepository(Repository[Segment]):
    model = Segment

    async def lock_all(self, workspace_id: uuid.UUID) -> list[Segment]:
        """Every live segment of the workspace, locked in id order (so no two workers wait on
        each other's locks)."""
        statement = self.scoped(workspace_id).order_by(Segment.id).with_for_update()
        return list((await self.session.execute(statement)).scalars())

    async def with_members(
        self, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
    ) -> list[Segment]:
        """The live segments any of these contacts is a member of, locked in id order."""
        members = select(SegmentMember.segment_id).where(
            SegmentMember.workspace_id == workspace_id, SegmentMember.contact_id.in_(contact_ids)
        )
        statement = (
            self.scoped(workspace_id)
            .where(Segment.id.in_(members))
            .order_by(Segment.id)
            .with_for_update()
        )
        return list((await self.session.execute(statement)).scalars())

    async def due_for_refresh(self, older_than: datetime) -> Segment | None:
        statement = (
            select(Segment)
            .where(
                Segment.kind == "dynamic",
                Segment.deleted_at.is_(None),
                func.coalesce(Segment.refreshed_at, Segment.created_at) < older_than,
            )
            .order_by(func.coalesce(Segment.refreshed_at, Segment.created_at))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def rebuild(
        self, segment: Segment, where: Sequence[ColumnElement[bool]]
    ) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """Make the members exactly the live contacts the condition selects, in one statement:
        (who joined, who left)."""
        matching = live_contacts(segment.workspace_id, where).cte("matching")
        keys = (literal(segment.workspace_id, _UUID), literal(segment.id, _UUID))
        added = (
            insert(SegmentMember)
            .from_select(["workspace_id", "segment_id", "contact_id"], select(*keys, matching.c.id))
            .on_conflict_do_nothing()
            .returning(SegmentMember.contact_id)
            .cte("added")
        )
        removed = (
            delete(SegmentMember)
            .where(
                *self._of(segment),
                # NOT IN, not NOT EXISTS: the CTE is read twice, so it is materialised, and only
                # NOT IN hashes it (NOT EXISTS scanned it once per member: 5 s at 10k members).
                SegmentMember.contact_id.not_in(select(matching.c.id)),
            )
            .returning(SegmentMember.contact_id)
            .cte("removed")
        )
        statement = union_all(
            select(literal(True), added.c.contact_id), select(literal(False), removed.c.contact_id)
        )
        joined: list[uuid.UUID] = []
        left: list[uuid.UUID] = []
        for is_added, contact_id in await self.session.execute(statement):
            (joined if is_added else left).append(contact_id)
        return sorted(joined), sorted(left)

    async def matching(
        self,
        workspace_id: uuid.UUID,
        contact_ids: Sequence[uuid.UUID],
        where: Sequence[ColumnElement[bool]],
    ) -> set[uuid.UUID]:
        """Which of these contacts are live and meet the condition."""
        statement = live_contacts(workspace_id, [Contact.id.in_(contact_ids), *where])
        return set((await self.session.execute(statement)).scalars())

    async def members_among(
        self, segment: Segment, contact_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        statement = select(SegmentMember.contact_id).where(
            *self._of(segment), SegmentMember.contact_id.in_(contact_ids)
        )
        return set((await self.session.execute(statement)).scalars())

    async def add_members(
        self, segment: Segment, contact_ids: Sequence[uuid.UUID]
    ) -> list[uuid.UUID]:
        if not contact_ids:
            return []
        statement = (
            insert(SegmentMember)
            .values(
                [
                    {
                        "workspace_id": segment.workspace_id,
                        "segment_id": segment.id,
                        "contact_id": c,
                    }
                    for c in sorted(set(contact_ids))
                ]
            )
            .on_conflict_do_nothing()
            .returning(SegmentMember.contact_id)
        )
        return sorted((await self.session.execute(statement)).scalars())

    async def remove_members(
        self, segment: Segment, contact_ids: Sequence[uuid.UUID]
    ) -> list[uuid.UUID]:
        if not contact_ids:
            return []
        statement = (
            delete(SegmentMember)
            .where(*self._of(segment), SegmentMember.contact_id.in_(set(contact_ids)))
            .returning(SegmentMember.contact_id)
        )
        return sorted((await self.session.execute(statement)).scalars())

    async def remove_all_members(self, segment: Segment) -> None:
        await self.session.execute(delete(SegmentMember).where(*self._of(segment)))

    def member_ids(self, segment: Segment) -> Select[uuid.UUID]:
        return select(SegmentMember.contact_id).where(*self._of(segment))

    def segment_ids_of(self, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> Select[uuid.UUID]:
        return select(SegmentMember.segment_id).where(
            SegmentMember.workspace_id == workspace_id, SegmentMember.contact_id == contact_id
        )

    async def take_stale(self, limit: int) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Up to `limit` queued contacts no other worker holds, by workspace; taken off the
        queue in this transaction."""
        claimed = (
            select(StaleContact.workspace_id, StaleContact.contact_id)
            .order_by(StaleContact.queued_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("claimed")
        )
        statement = (
            delete(StaleContact)
            .where(
                StaleContact.workspace_id == claimed.c.workspace_id,
                StaleContact.contact_id == claimed.c.contact_id,
            )
            .returning(StaleContact.workspace_id, StaleContact.contact_id)
        )
        found: dict[uuid.UUID, list[uuid.UUID]] = {}
        for workspace_id, contact_id in await self.session.execute(statement):
            found.setdefault(workspace_id, []).append(contact_id)
        return found

    @staticmethod
    def _of(segment: Segment) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return (
            SegmentMember.workspace_id == segment.workspace_id,
            SegmentMember.segment_id == segment.id,
        )
