import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func

from crm_api.companies.models import Company
from crm_api.companies.schemas import CompanyListParams, CompanySize, CompanyType
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
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.core.search import matches_all_terms

COMPANY_FILTERS = FilterFields(
    fields={
        **record_fields(Company),
        "name": FilterField(Kind.text, Company.name),
        "domain": FilterField(Kind.text, Company.domain),
        "industry": FilterField(Kind.text, Company.industry),
        "size": choice(Company.size, CompanySize),
        "type": choice(Company.type, CompanyType),
        "phone": FilterField(Kind.text, Company.phone),
        "owner_id": FilterField(Kind.id, Company.owner_id),
        **address_fields(Company.address),
    },
    custom_fields=Company.custom_fields,
)


def company_relation(model: Any) -> Relation:
    """`company.*` on a record with a `company_id`."""
    return Relation(
        COMPANY_FILTERS.fields, referenced(Company, model.workspace_id, model.company_id)
    )


COMPANY_ID_SORT = SortField(Company.id, uuid.UUID)
COMPANY_SORTS = {
    "created_at": SortField(Company.created_at, datetime),
    "updated_at": SortField(Company.updated_at, datetime),
    "name": SortField(func.crm_fold(Company.name), str),
}


class CompanyRepository(Repository[Company]):
    model = Company

    def list_filters(
        self, workspace_id: uuid.UUID, params: CompanyListParams
    ) -> list[ColumnElement[bool]]:
        where = record_filters(Company, params)
        if params.q is not None:
            where.append(matches_all_terms(Company.search_text, params.q))
        if params.domain is not None:
            where.append(Company.domain == params.domain)
        if params.type is not None:
            where.append(Company.type == params.type)
        if params.size is not None:
            where.append(Company.size == params.size)
        if params.industry is not None:
            where.append(func.lower(Company.industry) == params.industry.lower())
        return where
