from typing import Annotated

from fastapi import Depends, Query, Request, Response

from crm_api.audit import service
from crm_api.audit.schemas import AuditEntryRead, AuditListParams, AuditPage
from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import LINK_HEADER
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope

router = domain_router("audit-log")

Auditor = Annotated[Principal, Depends(require_scope(Scope.audit_log_read))]


@router.get(
    "/audit-log",
    response_model=AuditPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List the audit log, newest first",
    description="Every change made through the API, and every row an import applied, in the "
    "transaction that made it: who (API key, the user it acted as), what (resource, id, "
    "action, the changed fields' old and new values, secrets masked), when, the request's id "
    "and client address. Append-only: entries cannot be changed or removed. Changes the "
    "worker makes by itself (SLA breaches, scores, segment refreshes) are in the event feed.",
)
async def audit_log_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Auditor,
    params: Annotated[AuditListParams, Query()],
) -> AuditPage:
    rows, next_cursor = await service.list_audit_entries(session, principal, params)
    set_link_header(request, response, next_cursor)
    return AuditPage(data=[AuditEntryRead.model_validate(r) for r in rows], next_cursor=next_cursor)
