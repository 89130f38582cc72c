import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.models import Company
from crm_api.companies.repository import (
    COMPANY_FILTERS,
    COMPANY_ID_SORT,
    COMPANY_SORTS,
    CompanyRepository,
)
from crm_api.companies.schemas import (
    CompanyFields,
    CompanyListParams,
    CompanyRead,
    CompanyUpdate,
    CompanyUpsert,
)
from crm_api.contacts.repository import ContactRepository
from crm_api.contacts.service import announce as announce_contact
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import InvalidInput
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import SearchParams, search_description
from crm_api.core.hooks import deleted
from crm_api.core.patch import Changes
from crm_api.core.phones import normalize_phone
from crm_api.core.records import (
    apply_fields,
    bump_version,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
)
from crm_api.core.writes import RecordWrites, RowOutcome
from crm_api.custom_fields.service import search_records
from crm_api.users.service import ensure_assignable_owners
from crm_api.webhooks.events import emit


def _apply(company: Company, data: CompanyFields, principal: Principal) -> Changes:
    def phone(value: str | None) -> str | None:
        return (
            normalize_phone(value, principal.default_country, ("body", "phone")) if value else None
        )

    return apply_fields(company, data, data.model_fields_set, {"phone": phone})


def _announce(
    session: AsyncSession, action: str, company: Company, changes: Changes | None = None
) -> None:
    data = CompanyRead.model_validate(company)
    emit(session, company.workspace_id, f"company.{action}", data, changes=changes)


async def _check_owner(
    session: AsyncSession, principal: Principal, data: CompanyFields, company: Company | None = None
) -> None:
    """A newly given owner must be an active user."""
    if data.owner_id is not None and (company is None or data.owner_id != company.owner_id):
        await ensure_assignable_owners(session, principal, [data.owner_id])


async def _insert(
    session: AsyncSession, principal: Principal, data: CompanyFields, external_id: str | None
) -> Company:
    if getattr(data, "name", None) is None:
        raise InvalidInput(("body", "name"), "`name` is required to create a company.")
    await _check_owner(session, principal, data)
    company = Company(id=new_id(), workspace_id=principal.workspace_id, external_id=external_id)
    _apply(company, data, principal)
    CompanyRepository(session).add(company)
    await session.flush()
    _announce(session, "created", company)
    return company


async def _change(
    session: AsyncSession, principal: Principal, company: Company, data: CompanyFields
) -> Changes:
    await _check_owner(session, principal, data, company)
    changes = _apply(company, data, principal)
    bump_version(company, changes)
    await session.flush()
    if changes:
        _announce(session, "updated", company, changes)
    return changes


WRITES = RecordWrites(
    CompanyRepository, "company", "/v1/companies/batch/upsert", _insert, _change, _announce
)
create_company = WRITES.create
update_company = WRITES.update


async def upsert_company(
    session: AsyncSession, principal: Principal, external_id: str, data: CompanyUpsert
) -> tuple[Company, bool]:
    company, created, _ = await WRITES.upsert(session, principal, external_id, data)
    return company, created


async def get_company(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Company:
    return await get_or_404(CompanyRepository(session), principal.workspace_id, id, "company")


async def get_company_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> Company:
    return await get_by_external_id_or_404(
        CompanyRepository(session), principal.workspace_id, external_id, "company"
    )


async def list_companies(
    session: AsyncSession, principal: Principal, params: CompanyListParams
) -> tuple[list[Company], str | None]:
    repository = CompanyRepository(session)
    where = repository.list_filters(principal.workspace_id, params)
    return await list_records(
        repository, principal.workspace_id, params, where, COMPANY_SORTS, COMPANY_ID_SORT
    )


SEARCH_DESCRIPTION = search_description(COMPANY_FILTERS)


async def search_companies(
    session: AsyncSession, principal: Principal, params: SearchParams
) -> tuple[list[Company], str | None]:
    return await search_records(
        CompanyRepository(session),
        principal.workspace_id,
        params,
        CustomFieldResource.companies,
        COMPANY_FILTERS,
        COMPANY_SORTS,
        COMPANY_ID_SORT,
    )


async def delete_company(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    company = await WRITES.delete(session, principal, id, if_match)
    # Its contacts stay, no longer linked to a company that is gone.
    detached = await ContactRepository(session).detach_from_company(
        principal.workspace_id, company.id
    )
    for contact in detached:
        announce_contact(session, "updated", contact, {"company_id": (company.id, None)})
    await deleted(session, "company", principal.workspace_id, company.id)


async def import_companies(
    session: AsyncSession, principal: Principal, rows: Sequence[tuple[int, CompanyUpdate]]
) -> dict[int, RowOutcome]:
    """Apply import rows: each updates the company it names by external_id, else by domain, or
    creates one."""
    return await WRITES.import_rows(session, principal, rows, ["domain"])
