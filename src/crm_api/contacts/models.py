import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, RecordMixin
from crm_api.core.errors import register_constraint

LIFECYCLE_STAGES = ("subscriber", "lead", "qualified", "customer", "churned")
LIVE = text("deleted_at IS NULL")
# 1225 for 25 December.
BIRTHDAY_MONTH_DAY = text(
    "((EXTRACT(MONTH FROM birthday) * 100 + EXTRACT(DAY FROM birthday))::integer)"
)


def unknown_consent() -> dict[str, Any]:
    return {channel: {"status": "unknown", "updated_at": None} for channel in ("email", "sms")}


class Contact(RecordMixin, Base):
    __tablename__ = "contacts"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "company_id"], ["companies.workspace_id", "companies.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "owner_id"], ["users.workspace_id", "users.id"]),
        ForeignKeyConstraint(
            ["workspace_id", "merged_into_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        ForeignKeyConstraint(
            ["workspace_id", "referred_by_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        CheckConstraint(f"lifecycle_stage IN {LIFECYCLE_STAGES}", name="lifecycle_stage"),
        Index(
            "uq_contacts_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_contacts_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_contacts_workspace_id_updated_at_id",
            "workspace_id",
            "updated_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_contacts_workspace_id_last_name_id",
            "workspace_id",
            text("crm_fold(coalesce(last_name, ''))"),
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_contacts_workspace_id_company_id",
            "workspace_id",
            "company_id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_contacts_workspace_id_owner_id", "workspace_id", "owner_id", postgresql_where=LIVE
        ),
        # Imports match rows by phone; duplicates are found by it.
        Index("ix_contacts_workspace_id_phone", "workspace_id", "phone", postgresql_where=LIVE),
        Index(
            "ix_contacts_workspace_id_lifecycle_stage_created_at",
            "workspace_id",
            "lifecycle_stage",
            "created_at",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_contacts_workspace_id_referred_by_id",
            "workspace_id",
            "referred_by_id",
            postgresql_where=text("referred_by_id IS NOT NULL"),
        ),
        # Today's birthdays (contacts/occasions.py).
        Index(
            "ix_contacts_workspace_id_birthday_month_day",
            "workspace_id",
            BIRTHDAY_MONTH_DAY,
            postgresql_where=text("birthday IS NOT NULL AND deleted_at IS NULL"),
        ),
        Index("ix_contacts_tags", "tags", postgresql_using="gin", postgresql_where=LIVE),
        # Trigrams only: with workspace_id in the GIN index (btree_gin) a large workspace's
        # posting list must be intersected on every search, 4x slower at 1M contacts.
        Index(
            "ix_contacts_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            postgresql_where=LIVE,
        ),
    )

    first_name: Mapped[str | None] = mapped_column(Text, default=None)
    last_name: Mapped[str | None] = mapped_column(Text, default=None)
    email: Mapped[str | None] = mapped_column(Text, default=None)
    additional_emails: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    phone: Mapped[str | None] = mapped_column(Text, default=None)
    additional_phones: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    birthday: Mapped[date | None] = mapped_column(default=None)
    lifecycle_stage: Mapped[str | None] = mapped_column(Text, default=None)
    source: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    consent: Mapped[dict[str, Any]] = mapped_column(JSONB, default=unknown_consent)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Who brought this customer (loyalty's referral rules reward them).
    referred_by_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Set on a contact merged into another: it is gone (deleted_at), and its id leads there.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Set by POST /v1/contacts/{id}/erase: the personal fields are gone, the row stays.
    erased_at: Mapped[datetime | None] = mapped_column(default=None)
    # Folded names, emails, phone digits and the company's name, kept by the trigger
    # crm_contact_search_text (see the foundation migration); never written by the app.
    search_text: Mapped[str] = mapped_column(Text, server_default="", deferred=True)


class ContactEmail(Base):
    """Which live contact holds each address: the primary key makes addresses unique per
    workspace, whether primary or additional."""

    __tablename__ = "contact_emails"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "email"),
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            ondelete="CASCADE",
        ),
        Index("ix_contact_emails_workspace_id_contact_id", "workspace_id", "contact_id"),
    )

    workspace_id: Mapped[uuid.UUID]
    email: Mapped[str] = mapped_column(Text)
    contact_id: Mapped[uuid.UUID]


class ContactMetrics(Base):
    """What a contact's orders, feedback and tickets add up to, kept current in the transaction
    that changes them (segments/metrics.py), so filters and segments can use them as
    `metrics.<name>`. A contact with no row has no orders, feedback or tickets yet."""

    __tablename__ = "contact_metrics"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "contact_id"),
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            ondelete="CASCADE",
        ),
    )

    workspace_id: Mapped[uuid.UUID]
    contact_id: Mapped[uuid.UUID]
    # Paid orders (not pending, refunded or cancelled); amounts summed as they are.
    order_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_spent: Mapped[Decimal] = mapped_column(Numeric, default=0, server_default="0")
    first_order_at: Mapped[datetime | None] = mapped_column(default=None)
    last_order_at: Mapped[datetime | None] = mapped_column(default=None)
    last_nps_score: Mapped[int | None] = mapped_column(Integer, default=None)
    open_ticket_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The scores of the latest workspace-wide CLV run (analytics), as of its as_of.
    predicted_clv: Mapped[float | None] = mapped_column(Double, default=None)
    p_alive: Mapped[float | None] = mapped_column(Double, default=None)
    expected_purchases: Mapped[float | None] = mapped_column(Double, default=None)
    rfm_recency_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    rfm_frequency_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    rfm_monetary_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    rfm_segment: Mapped[str | None] = mapped_column(Text, default=None)
    scored_at: Mapped[datetime | None] = mapped_column(default=None)
    clv_run_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # The lead score (scoring/): 0-100, the factors that add up to it, when it was computed.
    lead_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    lead_score_factors: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSONB(none_as_null=True), default=None
    )
    lead_score_model_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    lead_scored_at: Mapped[datetime | None] = mapped_column(default=None)


class ContactOccasion(Base):
    """A birthday or customer anniversary announced (contact.birthday,
    contact.customer_anniversary): at most one row, so one event, per contact, occasion and year."""

    __tablename__ = "contact_occasions"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "contact_id", "occasion", "year"),
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
    )

    workspace_id: Mapped[uuid.UUID]
    contact_id: Mapped[uuid.UUID]
    occasion: Mapped[str] = mapped_column(Text)
    year: Mapped[int] = mapped_column(Integer)
    announced_at: Mapped[datetime] = mapped_column(server_default=func.now())


register_constraint(
    "uq_contacts_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another contact already has this external_id.",
)
register_constraint(
    "fk_contacts_workspace_id_company_id_companies",
    422,
    ("body", "company_id"),
    "No company with this id.",
)
register_constraint(
    "fk_contacts_workspace_id_referred_by_id_contacts",
    422,
    ("body", "referred_by_id"),
    "No contact with this id.",
)
register_constraint(
    "fk_contacts_workspace_id_owner_id_users", 422, ("body", "owner_id"), "No user with this id."
)
