import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from crm_api.contacts.models import Contact, ContactEmail
from crm_api.contacts.schemas import ContactListParams
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.core.search import matches_all_terms

CONTACT_ID_SORT = SortField(Contact.id, uuid.UUID)
CONTACT_SORTS = {
    "created_at": SortField(Contact.created_at, datetime),
    "updated_at": SortField(Contact.updated_at, datetime),
    # Folded (unaccent + lower), so Ánh sorts with the A's whatever the server's collation.
    "last_name": SortField(func.crm_fold(func.coalesce(Contact.last_name, "")), str),
}


class ContactRepository(Repository[Contact]):
    model = Contact

    def list_filters(
        self, workspace_id: uuid.UUID, params: ContactListParams
    ) -> list[ColumnElement[bool]]:
        where = record_filters(Contact, params)
        if params.q is not None:
            where.append(matches_all_terms(Contact.search_text, params.q))
        if params.email is not None:
            # Not correlated on purpose: a correlated subquery makes PostgreSQL walk the whole
            # list index, testing every contact, instead of one primary-key lookup each side.
            holder = select(ContactEmail.contact_id).where(
                ContactEmail.workspace_id == workspace_id, ContactEmail.email == params.email
            )
            where.append(Contact.id.in_(holder.scalar_subquery()))
        if params.lifecycle_stage is not None:
            where.append(Contact.lifecycle_stage == params.lifecycle_stage)
        if params.company_id is not None:
            where.append(Contact.company_id == params.company_id)
        return where

    async def claim_emails(
        self, workspace_id: uuid.UUID, owners: Sequence[tuple[str, uuid.UUID]]
    ) -> dict[str, uuid.UUID]:
        """Record each (email, contact) pair; return the emails another contact already holds,
        with that contact's id. A concurrent claim waits for the other transaction to end."""
        rows = [{"workspace_id": workspace_id, "email": e, "contact_id": c} for e, c in owners]
        if not rows:
            return {}
        wanted: dict[str, uuid.UUID] = {email: contact_id for email, contact_id in owners}
        # Rows as executemany parameters: SQLAlchemy batches them into multi-row INSERTs
        # without building a 1,000-row VALUES expression first.
        statement = (
            insert(ContactEmail)
            .on_conflict_do_nothing()
            .returning(ContactEmail.email, ContactEmail.contact_id)
        )
        inserted = (await self.session.execute(statement, rows)).all()
        claimed: dict[str, uuid.UUID] = {email: contact_id for email, contact_id in inserted}
        missing = [email for email in wanted if claimed.get(email) != wanted[email]]
        if not missing:
            return {}
        holders = await self.session.execute(
            select(ContactEmail.email, ContactEmail.contact_id).where(
                ContactEmail.workspace_id == workspace_id, ContactEmail.email.in_(missing)
            )
        )
        # Also catches two contacts of one statement claiming one address: the first one wins.
        return {email: holder for email, holder in holders if holder != wanted[email]}

    async def release_emails(
        self, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
    ) -> None:
        if contact_ids:
            await self.session.execute(
                delete(ContactEmail).where(
                    ContactEmail.workspace_id == workspace_id,
                    ContactEmail.contact_id.in_(contact_ids),
                )
            )

    async def detach_from_company(
        self, workspace_id: uuid.UUID, company_id: uuid.UUID
    ) -> list[Contact]:
        """Unlink the company's live contacts; returns them as they are now."""
        result = await self.session.execute(
            update(Contact)
            .where(
                Contact.workspace_id == workspace_id,
                Contact.company_id == company_id,
                Contact.deleted_at.is_(None),
            )
            .values(company_id=None, version=Contact.version + 1, updated_at=func.now())
            .returning(Contact)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars())

    async def by_emails(
        self, workspace_id: uuid.UUID, emails: Sequence[str]
    ) -> dict[str, list[Contact]]:
        """The live contact holding each address (primary or additional), locked for update."""
        if not emails:
            return {}
        statement = (
            self.scoped(workspace_id)
            .add_columns(ContactEmail.email)
            .join(
                ContactEmail,
                (ContactEmail.workspace_id == Contact.workspace_id)
                & (ContactEmail.contact_id == Contact.id),
            )
            .where(ContactEmail.email.in_(emails))
            .with_for_update(of=Contact)
        )
        return {email: [contact] for contact, email in await self.session.execute(statement)}
