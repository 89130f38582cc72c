import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, func

from crm_api.companies.models import Company
from crm_api.companies.schemas import CompanyListParams
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.core.search import matches_all_terms

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
