"""Playbooks and the next best actions they give for one contact: the active playbooks whose
segment holds the contact and whose `when` filter selects it, in priority order, each with its
offer, its message on the first channel the contact consented to, and a task for the owner."""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.models import Contact
from crm_api.contacts.repository import CONTACT_FILTERS, ContactRepository
from crm_api.contacts.schemas import ConsentStatus
from crm_api.core.auth import Principal
from crm_api.core.documents import document_of, document_or_404, put_document
from crm_api.core.errors import InvalidInput
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.records import get_or_404
from crm_api.custom_fields.service import filter_condition
from crm_api.playbooks.models import Playbooks
from crm_api.playbooks.repository import PlaybookRepository
from crm_api.playbooks.schemas import (
    ContactSignals,
    HeldBack,
    HeldBackReason,
    MessageChannel,
    NextAction,
    NextActions,
    Playbook,
    PlaybooksInput,
    PlaybooksRead,
    SuggestedMessage,
    SuggestedTask,
)
from crm_api.playbooks.templates import render, unknown_placeholders
from crm_api.segments.repository import SegmentRepository
from crm_api.webhooks.events import emit
from crm_api.workspaces.service import get_workspace

EVERYONE = "For every contact"


async def get_playbooks(session: AsyncSession, principal: Principal) -> Playbooks:
    return await document_or_404(
        session, Playbooks, principal.workspace_id,
        "This workspace has no playbooks yet: PUT /v1/playbooks.",
    )  # fmt: skip


async def _check(session: AsyncSession, workspace_id: uuid.UUID, data: PlaybooksInput) -> None:
    """422 for a repeated key, a segment that does not exist, a filter that does not compile
    or a placeholder no template knows."""
    keys: set[str] = set()
    segment_ids = {p.segment_id for p in data.playbooks if p.segment_id is not None}
    live = await SegmentRepository(session).live_by_ids(workspace_id, sorted(segment_ids))
    for index, playbook in enumerate(data.playbooks):
        loc: tuple[str | int, ...] = ("body", "playbooks", index)
        if playbook.key in keys:
            raise InvalidInput((*loc, "key"), "Another playbook has this key.")
        keys.add(playbook.key)
        if playbook.segment_id is not None and playbook.segment_id not in live:
            raise InvalidInput((*loc, "segment_id"), f"No segment with id {playbook.segment_id}.")
        await _condition(session, workspace_id, playbook, (*loc, "when"))
        texts = {
            ("message", "subject"): playbook.message and playbook.message.subject,
            ("message", "template"): playbook.message and playbook.message.template,
            ("owner_task", "title"): playbook.owner_task and playbook.owner_task.title,
        }
        for field, text in texts.items():
            if text and (unknown := unknown_placeholders(text)):
                raise InvalidInput((*loc, *field), f"No placeholder {{{{{unknown[0]}}}}}.")


async def _condition(
    session: AsyncSession, workspace_id: uuid.UUID, playbook: Playbook, loc: tuple[str | int, ...]
) -> ColumnElement[bool]:
    if playbook.when is None:
        return true()
    where = await filter_condition(
        session, workspace_id, CustomFieldResource.contacts, playbook.when, CONTACT_FILTERS, loc
    )
    return where[0]


async def put_playbooks(
    session: AsyncSession, principal: Principal, data: PlaybooksInput, if_match: str | None
) -> tuple[Playbooks, bool]:
    await _check(session, principal.workspace_id, data)
    values = {"playbooks": [p.model_dump(mode="json", exclude_none=True) for p in data.playbooks]}
    playbooks, created, changes = await put_document(
        session, Playbooks, principal.workspace_id, values, if_match
    )
    if created or changes:
        await session.flush()
        action = "created" if created else "updated"
        emit(session, principal.workspace_id, f"playbooks.{action}",
             PlaybooksRead.model_validate(playbooks), changes=changes or None,
             resource_id=principal.workspace_id)  # fmt: skip
    return playbooks, created


def _address(contact: Contact, channel: MessageChannel) -> str | None:
    return contact.email if channel is MessageChannel.email else contact.phone


async def next_actions(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> NextActions:
    workspace_id = principal.workspace_id
    contact = await get_or_404(ContactRepository(session), workspace_id, contact_id, "contact")
    metrics = await ContactRepository(session).metrics_of(workspace_id, contact_id)
    segment_repository = SegmentRepository(session)
    member_of = segment_repository.segment_ids_of(workspace_id, contact_id)
    segment_ids = sorted((await session.execute(member_of)).scalars())
    consent = {
        channel: ConsentStatus(contact.consent.get(channel.value, {}).get("status", "unknown"))
        for channel in MessageChannel
    }
    signals = ContactSignals(
        segment_ids=segment_ids,
        rfm_segment=metrics.rfm_segment if metrics else None,
        p_alive=metrics.p_alive if metrics else None,
        lead_score=metrics.lead_score if metrics else None,
        open_ticket_count=metrics.open_ticket_count if metrics else 0,
        consent=consent,
    )
    document = await document_of(session, Playbooks, workspace_id)
    stored = document.playbooks if document else []
    playbooks = [p for p in (Playbook.model_validate(s) for s in stored) if p.active]
    segments = await segment_repository.live_by_ids(workspace_id, segment_ids)
    in_segments = [p for p in playbooks if p.segment_id is None or p.segment_id in segments]
    conditions = []
    for playbook in in_segments:
        try:
            conditions.append(await _condition(session, workspace_id, playbook, ("when",)))
        except InvalidInput:  # a custom field its filter names was deleted since
            conditions.append(false())
    selected = await PlaybookRepository(session).selects(workspace_id, contact_id, conditions)
    matching = [p for p, yes in zip(in_segments, selected, strict=True) if yes]
    actions: list[NextAction] = []
    held_back: list[HeldBack] = []
    if matching:
        values = await _template_values(session, contact)
        time_zone = (await get_workspace(session, principal)).time_zone
        today = datetime.now(UTC).astimezone(ZoneInfo(time_zone))
        for playbook in matching:
            reasons = []
            if playbook.segment_id is not None:
                reasons.append(f"In the segment {segments[playbook.segment_id].name!r}")
            if playbook.when is not None:
                reasons.append("Selected by the playbook's `when` filter")
            if playbook.skip_with_open_tickets and signals.open_ticket_count > 0:
                action: NextAction | HeldBackReason = HeldBackReason.open_tickets
            else:
                action = _action(playbook, contact, consent, values, today.date(), reasons)
            if isinstance(action, HeldBackReason):
                held_back.append(HeldBack(playbook_key=playbook.key, reason=action))
            else:
                actions.append(action)
    return NextActions(contact_id=contact_id, signals=signals, data=actions, held_back=held_back)


async def _template_values(session: AsyncSession, contact: Contact) -> dict[str, str | None]:
    names = [n for n in (contact.first_name, contact.last_name) if n]
    company = None
    if contact.company_id is not None:
        company = await CompanyRepository(session).get(contact.workspace_id, contact.company_id)
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "full_name": " ".join(names) or contact.email,
        "email": contact.email,
        "company_name": company.name if company else None,
    }


def _action(
    playbook: Playbook,
    contact: Contact,
    consent: dict[MessageChannel, ConsentStatus],
    values: dict[str, Any],
    today: date,
    reasons: list[str],
) -> NextAction | HeldBackReason:
    """What the playbook says to do for the contact; held back when all it does is a message and
    no channel of it may be used."""
    values = {**values, "offer": playbook.offer}
    message, passed_over = None, []
    if playbook.message is not None:
        for channel in playbook.message.channels:
            to = _address(contact, channel)
            if message is None and consent[channel] is ConsentStatus.granted and to:
                subject = playbook.message.subject if channel is MessageChannel.email else None
                message = SuggestedMessage(
                    channel=channel, to=to,
                    subject=render(subject, values) if subject else None,
                    body=render(playbook.message.template, values),
                )  # fmt: skip
            elif message is None:
                passed_over.append(channel)
    task = None
    if playbook.owner_task is not None:
        task = SuggestedTask(
            title=render(playbook.owner_task.title, values), owner_id=contact.owner_id,
            due_on=today + timedelta(days=playbook.owner_task.due_in_days),
        )  # fmt: skip
    if message is None and task is None and playbook.offer is None:
        return HeldBackReason.no_consent
    return NextAction(
        playbook_key=playbook.key, playbook_name=playbook.name, reasons=reasons or [EVERYONE],
        offer=playbook.offer, message=message, channels_without_consent=passed_over,
        owner_task=task,
    )  # fmt: skip
