import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.models import Contact


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
