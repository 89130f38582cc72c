import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import InvalidInput
from crm_api.core.hooks import repoint_on_merge
from crm_api.core.patch import Changes
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_live_references,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
)
from crm_api.core.writes import RecordWrites
from crm_api.deals.repository import DealRepository
from crm_api.interactions.models import Interaction
from crm_api.interactions.repository import (
    INTERACTION_ID_SORT,
    INTERACTION_SORTS,
    InteractionRepository,
)
from crm_api.interactions.schemas import (
    InteractionFields,
    InteractionListParams,
    InteractionRead,
)
from crm_api.users.service import ensure_assignable_owners
from crm_api.webhooks.events import emit


def _announce(
    session: AsyncSession, action: str, interaction: Interaction, changes: Changes | None = None
) -> None:
    data = InteractionRead.model_validate(interaction)
    emit(session, interaction.workspace_id, f"interaction.{action}", data, changes=changes)


async def _apply(
    session: AsyncSession, principal: Principal, interaction: Interaction, data: InteractionFields
) -> Changes:
    """Check what the write points at, then write the sent fields."""
    sent = data.model_fields_set
    for field in ("channel", "occurred_at"):
        if field in sent and getattr(data, field) is None:
            raise InvalidInput(("body", field), f"An interaction always has its {field}.")

    def changed(field: str) -> uuid.UUID | None:
        value: uuid.UUID | None = getattr(data, field)
        return value if value is not None and value != getattr(interaction, field) else None

    await ensure_live_references(
        principal.workspace_id,
        [
            ("contact_id", ContactRepository(session), "contact", changed("contact_id")),
            ("company_id", CompanyRepository(session), "company", changed("company_id")),
            ("deal_id", DealRepository(session), "deal", changed("deal_id")),
        ],
    )
    if (user_id := changed("user_id")) is not None:
        await ensure_assignable_owners(session, principal, [user_id], "user_id")
    changes = apply_fields(interaction, data, sent)
    if interaction.contact_id is None and interaction.company_id is None:
        raise InvalidInput(
            ("body", "contact_id"), "An interaction is with a contact or a company (or both)."
        )
    return changes


async def _insert(
    session: AsyncSession, principal: Principal, data: InteractionFields, external_id: str | None
) -> Interaction:
    if data.channel is None:
        raise InvalidInput(("body", "channel"), "`channel` is required to create an interaction.")
    interaction = Interaction(
        id=new_id(),
        workspace_id=principal.workspace_id,
        external_id=external_id,
        occurred_at=datetime.now(UTC),
        user_id=principal.user_id,
        tags=[],
        custom_fields={},
    )
    await _apply(session, principal, interaction, data)
    InteractionRepository(session).add(interaction)
    await session.flush()
    _announce(session, "created", interaction)
    return interaction


async def _change(
    session: AsyncSession, principal: Principal, interaction: Interaction, data: InteractionFields
) -> Changes:
    changes = await _apply(session, principal, interaction, data)
    bump_version(interaction, changes)
    await session.flush()
    if changes:
        _announce(session, "updated", interaction, changes)
    return changes


async def get_interaction(
    session: AsyncSession, principal: Principal, id: uuid.UUID
) -> Interaction:
    return await get_or_404(
        InteractionRepository(session), principal.workspace_id, id, "interaction"
    )


async def get_interaction_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> Interaction:
    return await get_by_external_id_or_404(
        InteractionRepository(session), principal.workspace_id, external_id, "interaction"
    )


async def list_interactions(
    session: AsyncSession, principal: Principal, params: InteractionListParams
) -> tuple[list[Interaction], str | None]:
    repository = InteractionRepository(session)
    return await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.list_filters(params),
        INTERACTION_SORTS,
        INTERACTION_ID_SORT,
        default_sort="-occurred_at",
    )


WRITES = RecordWrites(
    InteractionRepository,
    "interaction",
    "/v1/interactions/batch/upsert",
    _insert,
    _change,
    _announce,
)
create_interaction = WRITES.create
update_interaction = WRITES.update
upsert_interaction = WRITES.upsert
batch_upsert_interactions = WRITES.batch_upsert
delete_interaction = WRITES.delete

# Nothing points at a merged contact: its records follow it to the one it was merged into.
repoint_on_merge("contact", "interactions", Interaction, "contact_id")
