import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.workspaces.models import ApiKey, Workspace

API_KEY_ID_SORT = SortField(ApiKey.id, uuid.UUID)
API_KEY_SORTS = {"created_at": SortField(ApiKey.created_at, datetime)}


class ApiKeyRepository(Repository[ApiKey]):
    """A revoked key is gone from the API, like a deleted record; its row stays."""

    model = ApiKey
    gone_column = "revoked_at"

    async def get_by_hash(self, workspace_id: uuid.UUID, key_hash: str) -> ApiKey | None:
        statement = self.scoped(workspace_id).where(ApiKey.key_hash == key_hash)
        return (await self.session.execute(statement)).scalar_one_or_none()


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, workspace: Workspace) -> None:
        self.session.add(workspace)

    async def first_named(self, name: str) -> Workspace | None:
        statement = select(Workspace).where(Workspace.name == name).order_by(Workspace.created_at)
        return (await self.session.execute(statement.limit(1))).scalar_one_or_none()
