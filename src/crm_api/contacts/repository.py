import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import company_relation
from crm_api.contacts.models import Contact, ContactEmail, ContactMetrics
from crm_api.contacts.schemas import ConsentStatus, ContactListParams, LifecycleStage
from crm_api.core.filters import (
    FilterField,
    FilterFields,
    Kind,
    Relation,
    address_fields,
    choice,
    record_fields,
    referenced,
)
from crm_api.core.pagination import SortField, SortKey
from crm_api.core.repository import Repository, record_filters
from crm_api.core.search import matches_all_terms

# `metrics.<name>`: a contact without a metrics row has no orders, feedback or tickets yet.
# A metric the analytics module stores per contact is one more column and one more line here.
METRIC_FIELDS = {
    "order_count": FilterField(Kind.number, ContactMetrics.order_count, missing=Decimal(0)),
    "total_spent": FilterField(Kind.number, ContactMetrics.total_spent, missing=Decimal(0)),
    "first_order_at": FilterField(Kind.datetime, ContactMetrics.first_order_at),
    "last_order_at": FilterField(Kind.datetime, ContactMetrics.last_order_at),
    "last_nps_score": FilterField(Kind.number, ContactMetrics.last_nps_score),
    "open_ticket_count": FilterField(
        Kind.number, ContactMetrics.open_ticket_count, missing=Decimal(0)
    ),
    # The latest workspace-wide CLV run's scores (GET /v1/metrics/clv/runs).
    "predicted_clv": FilterField(Kind.number, ContactMetrics.predicted_clv),
    "p_alive": FilterField(Kind.number, ContactMetrics.p_alive),
    "expected_purchases": FilterField(Kind.number, ContactMetrics.expected_purchases),
    "rfm_recency_score": FilterField(Kind.number, ContactMetrics.rfm_recency_score),
    "rfm_frequency_score": FilterField(Kind.number, ContactMetrics.rfm_frequency_score),
    "rfm_monetary_score": FilterField(Kind.number, ContactMetrics.rfm_monetary_score),
    "rfm_segment": FilterField(Kind.text, ContactMetrics.rfm_segment),
    "scored_at": FilterField(Kind.datetime, ContactMetrics.scored_at),
    # 0-100 (GET /v1/contacts/{id}/lead-score); none until the worker first scores the contact.
    "lead_score": FilterField(Kind.number, ContactMetrics.lead_score),
    "lead_scored_at": FilterField(Kind.datetime, ContactMetrics.lead_scored_at),
}
CONTACT_FIELDS = {
    **record_fields(Contact),
    "first_name": FilterField(Kind.text, Contact.first_name),
    "last_name": FilterField(Kind.text, Contact.last_name),
    "email": FilterField(Kind.text, Contact.email),
    "phone": FilterField(Kind.text, Contact.phone),
    "birthday": FilterField(Kind.date, Contact.birthday),
    "lifecycle_stage": choice(Contact.lifecycle_stage, LifecycleStage),
    "source": FilterField(Kind.text, Contact.source),
    "owner_id": FilterField(Kind.id, Contact.owner_id),
    "company_id": FilterField(Kind.id, Contact.company_id),
    "referred_by_id": FilterField(Kind.id, Contact.referred_by_id),
    **{
        f"consent.{channel}": choice(Contact.consent[channel]["status"].astext, ConsentStatus)
        for channel in ("email", "sms")
    },
    **address_fields(Contact.address),
}


def _metrics_of_contact(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(
        ContactMetrics.workspace_id == Contact.workspace_id,
        ContactMetrics.contact_id == Contact.id,
        condition,
    )


CONTACT_FILTERS = FilterFields(
    fields=CONTACT_FIELDS,
    relations={
        "company": company_relation(Contact),
        "metrics": Relation(METRIC_FIELDS, _metrics_of_contact),
    },
    custom_fields=Contact.custom_fields,
)


def contact_relation(model: Any) -> Relation:
    """`contact.*` on a record with a `contact_id`."""
    return Relation(CONTACT_FIELDS, referenced(Contact, model.workspace_id, model.contact_id))


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

    async def metrics_of(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID
    ) -> ContactMetrics | None:
        """What the contact's activity adds up to (None: no orders, feedback or tickets yet)."""
        return await self.session.get(ContactMetrics, (workspace_id, contact_id))

    async def merged_into(self, workspace_id: uuid.UUID, id: uuid.UUID) -> uuid.UUID | None:
        """Where a merged contact's id leads (None: it was not merged, or does not exist)."""
        statement = select(Contact.merged_into_id).where(
            Contact.workspace_id == workspace_id, Contact.id == id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def duplicate_groups(
        self,
        workspace_id: uuid.UUID,
        *,
        reasons: Sequence[str],
        min_score: float,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[tuple[int, str, str, float, list[uuid.UUID]]]:
        """(rank, reason, key, score, contact ids) of live contacts sharing a normalised email
        (rank 0), a phone (1), or a similar name at one company (2), in (rank, key) order."""
        rows = await self.session.execute(
            _DUPLICATES,
            {
                "workspace_id": workspace_id,
                "reasons": list(reasons),
                "min_score": min_score,
                "after_rank": after[0] if after else -1,
                "after_key": after[1] if after else "",
                "limit": limit,
            },
        )
        return [(r.rank, r.reason, r.key, float(r.score), list(r.ids)) for r in rows]


# Groups come in (rank, key) order; a cursor holds the last group's.
DUPLICATE_ORDER = (
    SortKey(SortField(literal_column("rank"), int), descending=False),
    SortKey(SortField(literal_column("key"), str), descending=False),
)
# Gmail ignores dots and `+tags` in the local part; most providers ignore `+tags`.
_DUPLICATES = text(
    r"""
WITH live AS (
    SELECT id, company_id, phone,
           crm_fold(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))) AS name
    FROM contacts WHERE workspace_id = :workspace_id AND deleted_at IS NULL
),
addresses AS (
    SELECT e.contact_id,
           CASE WHEN split_part(e.email, '@', 2) IN ('gmail.com', 'googlemail.com')
                THEN replace(regexp_replace(split_part(e.email, '@', 1), '\+.*$', ''), '.', '')
                     || '@gmail.com'
                ELSE regexp_replace(split_part(e.email, '@', 1), '\+.*$', '')
                     || '@' || split_part(e.email, '@', 2)
           END AS key
    FROM contact_emails e WHERE e.workspace_id = :workspace_id
),
groups AS (
    SELECT 0 AS rank, 'email' AS reason, key, 1.0 AS score,
           array_agg(DISTINCT contact_id ORDER BY contact_id) AS ids
    FROM addresses WHERE 'email' = ANY(:reasons)
    GROUP BY key HAVING count(DISTINCT contact_id) > 1
    UNION ALL
    SELECT 1, 'phone', phone, 0.9, array_agg(id ORDER BY id)
    FROM live WHERE phone IS NOT NULL AND 'phone' = ANY(:reasons)
    GROUP BY phone HAVING count(*) > 1
    UNION ALL
    SELECT 2, 'name', a.name || ' ~ ' || b.name || ' (' || a.id || ' ' || b.id || ')',
           round(similarity(a.name, b.name)::numeric, 3), ARRAY[a.id, b.id]
    FROM live a JOIN live b ON b.company_id = a.company_id AND b.id > a.id
    WHERE 'name' = ANY(:reasons) AND a.company_id IS NOT NULL AND a.name <> '' AND b.name <> ''
      AND similarity(a.name, b.name) >= :min_score
)
SELECT rank, reason, key, score, ids FROM groups
WHERE (rank, key) > (:after_rank, :after_key)
ORDER BY rank, key
LIMIT :limit
"""
)


# Today's birthdays and customer anniversaries not yet announced this year, claimed (so one
# transaction announces each, once) in the same statement that finds them.
_CLAIM_BIRTHDAYS = text(
    """
INSERT INTO contact_occasions (workspace_id, contact_id, occasion, year)
SELECT c.workspace_id, c.id, 'birthday', CAST(:year AS integer) FROM contacts c
WHERE c.workspace_id = :workspace_id AND c.birthday IS NOT NULL AND c.deleted_at IS NULL
  AND c.erased_at IS NULL
  AND ((EXTRACT(MONTH FROM birthday) * 100 + EXTRACT(DAY FROM birthday))::integer)
      = ANY(CAST(:month_days AS integer[]))
  AND NOT EXISTS (
    SELECT 1 FROM contact_occasions o WHERE o.workspace_id = c.workspace_id
      AND o.contact_id = c.id AND o.occasion = 'birthday' AND o.year = CAST(:year AS integer))
ORDER BY c.id LIMIT :limit
ON CONFLICT DO NOTHING
RETURNING contact_id
"""
)
_CLAIM_ANNIVERSARIES = text(
    """
WITH firsts AS (
  SELECT m.workspace_id, m.contact_id,
         (m.first_order_at AT TIME ZONE CAST(:time_zone AS text))::date AS day
  FROM contact_metrics m
  WHERE m.workspace_id = :workspace_id AND m.first_order_at IS NOT NULL
)
INSERT INTO contact_occasions (workspace_id, contact_id, occasion, year)
SELECT f.workspace_id, f.contact_id, 'customer_anniversary', CAST(:year AS integer) FROM firsts f
JOIN contacts c ON c.workspace_id = f.workspace_id AND c.id = f.contact_id
WHERE c.deleted_at IS NULL AND c.erased_at IS NULL
  AND ((EXTRACT(MONTH FROM f.day) * 100 + EXTRACT(DAY FROM f.day))::integer)
      = ANY(CAST(:month_days AS integer[]))
  AND EXTRACT(YEAR FROM f.day) < CAST(:year AS integer)
  AND NOT EXISTS (
    SELECT 1 FROM contact_occasions o WHERE o.workspace_id = f.workspace_id
      AND o.contact_id = f.contact_id AND o.occasion = 'customer_anniversary'
      AND o.year = CAST(:year AS integer))
ORDER BY f.contact_id LIMIT :limit
ON CONFLICT DO NOTHING
RETURNING contact_id
"""
)


class OccasionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self,
        occasion: str,
        workspace_id: uuid.UUID,
        time_zone: str,
        year: int,
        month_days: Sequence[int],
        limit: int,
    ) -> list[uuid.UUID]:
        """Contacts whose `occasion` falls on one of these month-days (1225) this year and
        has not been announced; marked announced."""
        # A birthday is a date; a first order's day depends on the time zone.
        statement = _CLAIM_BIRTHDAYS if occasion == "birthday" else _CLAIM_ANNIVERSARIES
        parameters = {
            "workspace_id": workspace_id,
            "year": year,
            "month_days": list(month_days),
            "limit": limit,
            "time_zone": time_zone,
        }
        return list((await self.session.execute(statement, parameters)).scalars())

    async def first_orders(
        self, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, datetime]:
        statement = select(ContactMetrics.contact_id, ContactMetrics.first_order_at).where(
            ContactMetrics.workspace_id == workspace_id, ContactMetrics.contact_id.in_(contact_ids)
        )
        rows = await self.session.execute(statement)
        return {contact_id: first for contact_id, first in rows if first is not None}
