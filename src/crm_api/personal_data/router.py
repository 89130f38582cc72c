import uuid
from typing import Annotated

from fastapi import Depends, Path

from crm_api.contacts.models import Contact
from crm_api.contacts.schemas import ContactRead
from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.personal_data import service
from crm_api.personal_data.schemas import ContactExport

router = domain_router("personal-data")

# A person's data, whole: for the workspace's admins (its data protection officer's key).
Admin = Annotated[Principal, Depends(require_scope(Scope.admin))]
ContactId = Annotated[uuid.UUID, Path(description="The person's contact id.")]


@router.get(
    "/contacts/{contact_id}/export",
    response_model=ContactExport,
    responses=problem_responses(404),
    summary="Export everything held on a person",
    description="The contact, contacts merged into it, and every interaction, ticket and "
    "comment, deal, order, survey answer, segment membership, metric and audit log entry of "
    "theirs, in one document (GDPR articles 15 and 20).",
)
async def contacts_export(
    contact_id: ContactId, session: DbSession, principal: Admin
) -> ContactExport:
    return await service.export_contact(session, principal, contact_id)


@router.post(
    "/contacts/{contact_id}/erase",
    response_model=ContactRead,
    responses=problem_responses(404),
    summary="Erase a person",
    description="Scrubs every personal field of the contact and of contacts merged into it "
    "(names, emails, phones, address, birthday, tags, custom fields, external id), the "
    "subjects, summaries, bodies and comments of their interactions, tickets, ticket comments "
    "and survey answers, and every copy we keep: the event feed and webhook payloads, stored "
    "idempotent responses, the audit log's recorded values (GDPR article 17). Orders, scores "
    "and answers stay, anonymised, so revenue, CLV, NPS and retention are unchanged. The "
    "contact remains, with `erased_at` set. Event: `contact.erased`. Cannot be undone; "
    "erasing again changes nothing more.",
)
async def contacts_erase(contact_id: ContactId, session: DbSession, principal: Admin) -> Contact:
    return await service.erase_contact(session, principal, contact_id)
