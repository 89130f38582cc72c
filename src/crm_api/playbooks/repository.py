import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.models import Company
from crm_api.contacts.models import Contact, ContactMetrics
from crm_api.segments.models import SegmentMember
from crm_api.workspaces.models import Workspace


class PlaybookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def selects(
        self,
        workspace_id: uuid.UUID,
        contact_id: uuid.UUID,
        conditions: Sequence[ColumnElement[bool]],
    ) -> list[bool]:
        """Whether each condition selects the contact, in one statement."""
        if not conditions:
            return []
        of_contact = (Contact.workspace_id == workspace_id, Contact.id == contact_id)
        statement = select(*(exists().where(*of_contact, condition) for condition in conditions))
        return [bool(value) for value in (await self.session.execute(statement)).one()]

    async def segment_ids_of(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID
    ) -> list[uuid.UUID]:
        statement = (
            select(SegmentMember.segment_id)
            .where(
                SegmentMember.workspace_id == workspace_id, SegmentMember.contact_id == contact_id
            )
            .order_by(SegmentMember.segment_id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def metrics_of(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID
    ) -> ContactMetrics | None:
        return await self.session.get(ContactMetrics, (workspace_id, contact_id))

    async def company_name(self, workspace_id: uuid.UUID, company_id: uuid.UUID) -> str | None:
        statement = select(Company.name).where(
            Company.workspace_id == workspace_id, Company.id == company_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def time_zone(self, workspace_id: uuid.UUID) -> str:
        statement = select(Workspace.time_zone).where(Workspace.id == workspace_id)
        return (await self.session.execute(statement)).scalar_one()
