"""Every domain's tables, so Base.metadata is complete (Alembic, mappers)."""

from crm_api.companies.models import Company
from crm_api.contacts.models import Contact, ContactEmail
from crm_api.core.db import Base
from crm_api.core.idempotency import IdempotencyRecord
from crm_api.workspaces.models import ApiKey, Workspace

__all__ = ["ApiKey", "Base", "Company", "Contact", "ContactEmail", "IdempotencyRecord", "Workspace"]
