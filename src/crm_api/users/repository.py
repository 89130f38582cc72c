import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Table, func, literal, select, union_all
from sqlalchemy.orm import selectinload

from crm_api.core.db import Base
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.core.search import matches_all_terms
from crm_api.users.models import Team, TeamMember, User
from crm_api.users.schemas import TeamListParams, UserListParams
from crm_api.workspaces.models import ApiKey

USER_ID_SORT = SortField(User.id, uuid.UUID)
USER_SORTS = {
    "created_at": SortField(User.created_at, datetime),
    "updated_at": SortField(User.updated_at, datetime),
    "name": SortField(func.crm_fold(User.name), str),
}
TEAM_ID_SORT = SortField(Team.id, uuid.UUID)
TEAM_SORTS = {
    "created_at": SortField(Team.created_at, datetime),
    "name": SortField(func.crm_fold(Team.name), str),
}


# The columns that give a record to a user: contacts, companies and deals have an owner,
# tickets an assignee.
OWNER_COLUMNS = ("owner_id", "assignee_id")


def _owned_record_columns() -> list[tuple[Table, str]]:
    """Every record table with an owner (and its owner column), whatever comes next."""
    return [
        (table, column)
        for table in Base.metadata.sorted_tables
        for column in OWNER_COLUMNS
        if {column, "workspace_id", "deleted_at"} <= set(table.columns.keys())
    ]


class UserRepository(Repository[User]):
    model = User

    def list_filters(
        self, workspace_id: uuid.UUID, params: UserListParams
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if params.q is not None:
            text = func.crm_fold(User.name + " " + func.coalesce(User.email, ""))
            where.append(matches_all_terms(text, params.q))
        if params.email is not None:
            where.append(User.email == params.email)
        if params.active is not None:
            where.append(User.active.is_(params.active))
        if params.external_id is not None:
            where.append(User.external_id == params.external_id)
        if params.created_after is not None:
            where.append(User.created_at >= params.created_after)
        if params.created_before is not None:
            where.append(User.created_at < params.created_before)
        if params.team_id is not None:
            members = select(TeamMember.user_id).where(
                TeamMember.workspace_id == workspace_id, TeamMember.team_id == params.team_id
            )
            where.append(User.id.in_(members.scalar_subquery()))
        return where

    async def get_by_email(self, workspace_id: uuid.UUID, email: str) -> User | None:
        statement = self.scoped(workspace_id).where(User.email == email)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def active_ids(self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these ids are live, active users of the workspace."""
        if not ids:
            return set()
        statement = select(User.id).where(
            User.workspace_id == workspace_id,
            User.id.in_(set(ids)),
            User.deleted_at.is_(None),
            User.active.is_(True),
        )
        return set((await self.session.execute(statement)).scalars())

    async def owned_record_counts(
        self, workspace_id: uuid.UUID, user_id: uuid.UUID
    ) -> dict[str, int]:
        """How many live records of each kind this user owns, and how many live API keys act as
        them (kinds with none left out)."""
        counts = [
            select(literal(table.name).label("kind"), func.count().label("owned")).where(
                table.c.workspace_id == workspace_id,
                table.c[column] == user_id,
                table.c.deleted_at.is_(None),
            )
            for table, column in _owned_record_columns()
        ]
        keys = select(literal("api_keys"), func.count()).where(
            ApiKey.workspace_id == workspace_id,
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
        )
        rows = (await self.session.execute(union_all(*counts, keys))).all()
        return {kind: owned for kind, owned in rows if owned}


class TeamRepository(Repository[Team]):
    model = Team
    eager = (selectinload(Team.members),)

    def list_filters(
        self, workspace_id: uuid.UUID, params: TeamListParams
    ) -> list[ColumnElement[bool]]:
        if params.member_id is None:
            return []
        teams = select(TeamMember.team_id).where(
            TeamMember.workspace_id == workspace_id, TeamMember.user_id == params.member_id
        )
        return [Team.id.in_(teams.scalar_subquery())]

    async def of_member(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> list[Team]:
        params = TeamListParams(member_id=user_id)
        statement = (
            self.scoped(workspace_id)
            .where(*self.list_filters(workspace_id, params))
            .order_by(Team.id)
            .with_for_update(of=Team)
        )
        return list((await self.session.execute(statement)).scalars())
