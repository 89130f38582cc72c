import uuid
from datetime import datetime

from sqlalchemy import ColumnElement

from crm_api.audit.models import AuditEntry
from crm_api.audit.schemas import AuditListParams
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository

AUDIT_ID_SORT = SortField(AuditEntry.id, uuid.UUID)
AUDIT_SORTS = {"created_at": SortField(AuditEntry.created_at, datetime)}


class AuditRepository(Repository[AuditEntry]):
    model = AuditEntry
    gone_column = None

    def list_filters(self, params: AuditListParams) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        for name in ("resource", "resource_id", "action", "api_key_id", "user_id", "request_id"):
            value = getattr(params, name)
            if value is not None:
                where.append(getattr(AuditEntry, name) == value)
        if params.occurred_after is not None:
            where.append(AuditEntry.created_at >= params.occurred_after)
        if params.occurred_before is not None:
            where.append(AuditEntry.created_at < params.occurred_before)
        return where
