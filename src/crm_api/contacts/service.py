import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.merging import merged_values
from crm_api.contacts.models import Contact, unknown_consent
from crm_api.contacts.repository import (
    CONTACT_FILTERS,
    CONTACT_ID_SORT,
    CONTACT_SORTS,
    DUPLICATE_ORDER,
    ContactRepository,
)
from crm_api.contacts.schemas import (
    CompanyContactListParams,
    ConsentInput,
    ContactCreate,
    ContactFields,
    ContactListParams,
    ContactMerge,
    ContactMergeResult,
    ContactRead,
    ContactUpdate,
    ContactUpsert,
    ContactUpsertItem,
    DuplicateGroup,
    DuplicateListParams,
    DuplicateReason,
    MergeMoves,
)
from crm_api.core.auth import Principal
from crm_api.core.batch import (
    BatchItemResult,
    item_error,
    item_result,
    repeated_external_id,
    upsert_each,
)
from crm_api.core.db import new_id
from crm_api.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionRequired,
    ProblemError,
)
from crm_api.core.etag import check_if_match
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import SearchParams, search_description
from crm_api.core.hooks import deleted, merged, repoint_on_merge
from crm_api.core.pagination import decode_cursor, encode_cursor, fingerprint
from crm_api.core.patch import Changes, assign
from crm_api.core.phones import normalize_phone
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_external_id_free,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
    soft_delete,
    upsert_by_external_id,
)
from crm_api.core.repository import repoint
from crm_api.core.writes import (
    KeyOf,
    Lookup,
    RowOutcome,
    RowsOverlap,
    Written,
    match_rows,
    repeats_a_key,
    write_rows,
)
from crm_api.custom_fields.service import search_records
from crm_api.users.repository import UserRepository
from crm_api.users.service import ensure_assignable_owners
from crm_api.webhooks.events import emit

IDENTIFYING_FIELDS = ("first_name", "last_name", "email", "phone")
EMAIL_FIELDS = {"email", "additional_emails"}
BATCH_PATH = "/v1/contacts/batch/upsert"


class EmailTaken(Conflict):
    slug, title = "email-taken", "Email address taken"


def _apply(contact: Contact, data: ContactFields, principal: Principal) -> Changes:
    """Normalise and write the sent fields; the contact must stay identifiable."""
    country = principal.default_country

    def phone(value: str | None) -> str | None:
        return normalize_phone(value, country, ("body", "phone")) if value else None

    def additional_phones(values: list[str] | None) -> list[str]:
        phones = [
            normalize_phone(v, country, ("body", "additional_phones", i))
            for i, v in enumerate(values or [])
        ]
        return list(dict.fromkeys(phones))

    def consent(value: ConsentInput | None) -> dict[str, Any]:
        result = dict(contact.consent)
        now = datetime.now(UTC).isoformat()
        for channel, status in (value.model_dump(exclude_none=True) if value else {}).items():
            if result[channel]["status"] != status:
                result[channel] = {"status": str(status), "updated_at": now}
        return result

    converters: dict[str, Callable[[Any], Any]] = {
        "phone": phone,
        "additional_phones": additional_phones,
        "consent": consent,
        "additional_emails": lambda values: list(dict.fromkeys(values or [])),
    }
    changes = apply_fields(contact, data, data.model_fields_set, converters)
    # The primary address or number is not repeated among the additional ones.
    additional = [e for e in contact.additional_emails if e != contact.email]
    assign(contact, changes, "additional_emails", additional)
    additional = [p for p in contact.additional_phones if p != contact.phone]
    assign(contact, changes, "additional_phones", additional)
    # An erased person keeps none of these, and may still be moved through the lifecycle.
    erased = contact.erased_at is not None
    if not erased and not any(getattr(contact, field) for field in IDENTIFYING_FIELDS):
        for field, (old, _) in changes.items():
            setattr(contact, field, old)
        raise InvalidInput(
            ("body",), "A contact needs at least one of first_name, last_name, email or phone."
        )
    principal.hold_to_own_records(contact, "owner_id")
    return changes


def _emails_of(contact: Contact) -> list[str]:
    return [e for e in [contact.email, *contact.additional_emails] if e]


async def _check_references(
    session: AsyncSession, principal: Principal, data: ContactFields, contact: Contact | None = None
) -> None:
    """The company and referrer must exist; a newly given owner must be an active user."""
    if data.owner_id is not None and (contact is None or data.owner_id != contact.owner_id):
        await ensure_assignable_owners(session, principal, [data.owner_id])
    referrer = data.referred_by_id
    if referrer is not None and (contact is None or referrer != contact.referred_by_id):
        if contact is not None and referrer == contact.id:
            raise InvalidInput(("body", "referred_by_id"), "A contact cannot refer themselves.")
        if referrer not in await ContactRepository(session).live_ids(
            principal.workspace_id, [referrer]
        ):
            raise InvalidInput(("body", "referred_by_id"), f"No contact with id {referrer}.")
    if data.company_id is None:
        return
    live = await CompanyRepository(session).live_ids(principal.workspace_id, [data.company_id])
    if data.company_id not in live:
        raise InvalidInput(("body", "company_id"), f"No company with id {data.company_id}.")


async def _claim_emails(
    repository: ContactRepository, principal: Principal, contacts: Sequence[Contact]
) -> None:
    owners = [(email, c.id) for c in contacts for email in _emails_of(c)]
    taken = await repository.claim_emails(principal.workspace_id, owners)
    if taken:
        email, holder = next(iter(taken.items()))
        field = "email" if any(c.email == email for c in contacts) else "additional_emails"
        raise EmailTaken(
            f"{email} already belongs to contact {holder}.",
            existing_id=str(holder),
            errors=[{"loc": ["body", field], "msg": "address taken", "type": "email_taken"}],
        )


def announce(
    session: AsyncSession, action: str, contact: Contact, changes: Changes | None = None
) -> None:
    """The `contact.<action>` event, with the contact as the API shows it now."""
    data = ContactRead.model_validate(contact)
    emit(session, contact.workspace_id, f"contact.{action}", data, changes=changes)


async def _insert(session: AsyncSession, principal: Principal, contacts: Sequence[Contact]) -> None:
    repository = ContactRepository(session)
    for contact in contacts:
        repository.add(contact)
    await session.flush()
    await _claim_emails(repository, principal, contacts)
    for contact in contacts:
        announce(session, "created", contact)


async def _save_changes(
    session: AsyncSession, principal: Principal, changed: Sequence[tuple[Contact, Changes]]
) -> None:
    repository = ContactRepository(session)
    for contact, changes in changed:
        bump_version(contact, changes)
    await session.flush()
    moved = [c for c, changes in changed if EMAIL_FIELDS & changes.keys()]
    await repository.release_emails(principal.workspace_id, [c.id for c in moved])
    await _claim_emails(repository, principal, moved)
    for contact, changes in changed:
        if changes:
            announce(session, "updated", contact, changes)


def _new_contact(data: ContactFields, principal: Principal, external_id: str | None) -> Contact:
    contact = Contact(
        id=new_id(),
        workspace_id=principal.workspace_id,
        external_id=external_id,
        additional_emails=[],
        additional_phones=[],
        tags=[],
        custom_fields={},
        consent=unknown_consent(),
    )
    _apply(contact, data, principal)
    return contact


async def create_contact(
    session: AsyncSession, principal: Principal, data: ContactCreate
) -> Contact:
    repository = ContactRepository(session)
    await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "contact")
    await _check_references(session, principal, data)
    contact = _new_contact(data, principal, data.external_id)
    await _insert(session, principal, [contact])
    return contact


async def list_contacts(
    session: AsyncSession, principal: Principal, params: ContactListParams
) -> tuple[list[Contact], str | None]:
    repository = ContactRepository(session)
    where = repository.list_filters(principal.workspace_id, params)
    return await list_records(
        repository, principal.workspace_id, params, where, CONTACT_SORTS, CONTACT_ID_SORT
    )


SEARCH_DESCRIPTION = search_description(
    CONTACT_FILTERS,
    "`metrics.*` are what the contact's paid orders, NPS answers and open tickets add up to, "
    "and the scores of the latest workspace-wide CLV run (`predicted_clv`, `p_alive`, "
    "`expected_purchases`, `rfm_*`, as of `scored_at`); dynamic segments on those scores "
    "take a new run's at their next scheduled refresh. ",
)


async def search_contacts(
    session: AsyncSession, principal: Principal, params: SearchParams
) -> tuple[list[Contact], str | None]:
    return await search_records(
        ContactRepository(session),
        principal.workspace_id,
        params,
        CustomFieldResource.contacts,
        CONTACT_FILTERS,
        CONTACT_SORTS,
        CONTACT_ID_SORT,
    )


async def list_company_contacts(
    session: AsyncSession,
    principal: Principal,
    company_id: uuid.UUID,
    params: CompanyContactListParams,
) -> tuple[list[Contact], str | None]:
    await get_or_404(CompanyRepository(session), principal.workspace_id, company_id, "company")
    with_company = ContactListParams(**params.model_dump(exclude_unset=True), company_id=company_id)
    return await list_contacts(session, principal, with_company)


async def update_contact(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: ContactUpdate,
    if_match: str | None,
) -> Contact:
    repository = ContactRepository(session)
    contact = await get_or_404(
        repository, principal.workspace_id, id, "contact", for_update=True, if_match=if_match
    )
    if "external_id" in data.model_fields_set and data.external_id != contact.external_id:
        await ensure_external_id_free(
            repository, principal.workspace_id, data.external_id, "contact"
        )
    await _check_references(session, principal, data, contact)
    changes = _apply(contact, data, principal)
    await _save_changes(session, principal, [(contact, changes)])
    return contact


async def delete_contact(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    repository = ContactRepository(session)
    contact = await get_or_404(
        repository, principal.workspace_id, id, "contact", for_update=True, if_match=if_match
    )
    soft_delete(contact)
    await session.flush()
    # Its addresses are free again for other contacts.
    await repository.release_emails(principal.workspace_id, [contact.id])
    announce(session, "deleted", contact)
    await deleted(session, "contact", principal.workspace_id, contact.id)


async def upsert_contact(
    session: AsyncSession, principal: Principal, external_id: str, data: ContactUpsert
) -> tuple[Contact, bool]:
    contact, created, _ = await _upsert_one(session, principal, external_id, data)
    return contact, created


async def _upsert_one(
    session: AsyncSession, principal: Principal, external_id: str, data: ContactFields
) -> tuple[Contact, bool, Changes]:
    await _check_references(session, principal, data)

    async def create() -> Contact:
        contact = _new_contact(data, principal, external_id)
        await _insert(session, principal, [contact])
        return contact

    async def update(contact: Contact) -> Changes:
        changes = _apply(contact, data, principal)
        await _save_changes(session, principal, [(contact, changes)])
        return changes

    return await upsert_by_external_id(
        session, ContactRepository(session), principal.workspace_id, external_id, create, update
    )


@dataclass
class _Planned:
    index: int
    item: ContactUpsertItem
    contact: Contact
    created: bool
    changes: Changes


async def batch_upsert_contacts(
    session: AsyncSession, principal: Principal, items: Sequence[ContactUpsertItem]
) -> list[BatchItemResult]:
    """Upsert up to 1,000 contacts by external id. An item that fails changes nothing and gets
    its problem in its result; the others are applied. All of them in one statement per step
    when nothing conflicts; item by item, each in a savepoint, when something does."""
    results: dict[int, BatchItemResult] = {}
    valid = await _prevalidate(session, principal, items, results)
    try:
        async with session.begin_nested():
            planned = await _plan(session, principal, valid, results)
            # Updates first: an address one item gives up may be taken by a new contact.
            await _save_changes(
                session, principal, [(p.contact, p.changes) for p in planned if not p.created]
            )
            await _insert(session, principal, [p.contact for p in planned if p.created])
        for p in planned:
            results[p.index] = item_result(
                p.index, p.item.external_id, p.contact, p.created, p.changes
            )
    except (ProblemError, IntegrityError):

        async def upsert_one(item: ContactUpsertItem) -> tuple[Contact, bool, Changes]:
            return await _upsert_one(session, principal, item.external_id, item)

        for result in await upsert_each(session, BATCH_PATH, valid, upsert_one):
            results[result.index] = result
    return [results[i] for i in range(len(items))]


async def _reference_errors(
    session: AsyncSession, principal: Principal, items: Sequence[tuple[int, ContactFields]]
) -> dict[int, ProblemError]:
    """Items naming a company or referrer that is gone or an owner who is not an active user,
    checked for all items in three queries."""
    company_ids = [item.company_id for _, item in items if item.company_id is not None]
    live_companies = await CompanyRepository(session).live_ids(principal.workspace_id, company_ids)
    owner_ids = [item.owner_id for _, item in items if item.owner_id is not None]
    active_owners = await UserRepository(session).active_ids(principal.workspace_id, owner_ids)
    referrer_ids = [item.referred_by_id for _, item in items if item.referred_by_id is not None]
    live_referrers = await ContactRepository(session).live_ids(principal.workspace_id, referrer_ids)
    errors: dict[int, ProblemError] = {}
    for index, item in items:
        if item.company_id is not None and item.company_id not in live_companies:
            errors[index] = InvalidInput(
                ("body", "company_id"), f"No company with id {item.company_id}."
            )
        elif item.referred_by_id is not None and item.referred_by_id not in live_referrers:
            errors[index] = InvalidInput(
                ("body", "referred_by_id"), f"No contact with id {item.referred_by_id}."
            )
        elif item.owner_id is not None and item.owner_id not in active_owners:
            errors[index] = InvalidInput(
                ("body", "owner_id"), f"No active user with id {item.owner_id}."
            )
    return errors


async def _prevalidate(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[ContactUpsertItem],
    results: dict[int, BatchItemResult],
) -> list[tuple[int, ContactUpsertItem]]:
    seen: set[str] = set()
    invalid = await _reference_errors(session, principal, list(enumerate(items)))
    valid = []
    for index, item in enumerate(items):
        error = repeated_external_id() if item.external_id in seen else invalid.get(index)
        if error is not None:
            results[index] = item_error(BATCH_PATH, index, item.external_id, error)
        else:
            valid.append((index, item))
        seen.add(item.external_id)
    return valid


async def _plan(
    session: AsyncSession,
    principal: Principal,
    valid: Sequence[tuple[int, ContactUpsertItem]],
    results: dict[int, BatchItemResult],
) -> list[_Planned]:
    existing = await ContactRepository(session).get_by_external_ids(
        principal.workspace_id, [item.external_id for _, item in valid], for_update=True
    )
    planned = []
    for index, item in valid:
        try:
            contact = existing.get(item.external_id)
            if contact is None:
                planned.append(
                    _Planned(index, item, _new_contact(item, principal, item.external_id), True, {})
                )
            else:
                planned.append(
                    _Planned(index, item, contact, False, _apply(contact, item, principal))
                )
        except ProblemError as error:
            results[index] = item_error(BATCH_PATH, index, item.external_id, error)
    return planned


async def get_contact_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> Contact:
    return await get_by_external_id_or_404(
        ContactRepository(session), principal.workspace_id, external_id, "contact"
    )


def _match_keys(session: AsyncSession, principal: Principal) -> list[tuple[str, KeyOf, Lookup]]:
    """How an import row names its contact: by external_id, else by email, else by phone."""
    repository = ContactRepository(session)
    workspace_id = principal.workspace_id

    def phone_of(data: ContactUpdate) -> str | None:
        if not data.phone:
            return None
        try:
            return normalize_phone(data.phone, principal.default_country, ("body", "phone"))
        except ProblemError:
            return None  # not a key; the row is rejected when applied

    async def by_external_id(values: Sequence[str]) -> dict[str, list[Contact]]:
        return await repository.holding(workspace_id, "external_id", values)

    async def by_email(values: Sequence[str]) -> dict[str, list[Contact]]:
        return await repository.by_emails(workspace_id, values)

    async def by_phone(values: Sequence[str]) -> dict[str, list[Contact]]:
        return await repository.holding(workspace_id, "phone", values)

    return [
        ("external_id", attrgetter("external_id"), by_external_id),
        ("email", attrgetter("email"), by_email),
        ("phone", phone_of, by_phone),
    ]


async def import_contacts(
    session: AsyncSession, principal: Principal, rows: Sequence[tuple[int, ContactUpdate]]
) -> dict[int, RowOutcome]:
    """Apply import rows: each updates the contact it names (see _match_rows) with the fields it
    has, or creates one. All rows in a few statements while nothing conflicts."""

    keys = _match_keys(session, principal)

    async def write_all(rows: Sequence[tuple[int, ContactUpdate]]) -> dict[int, RowOutcome]:
        if repeats_a_key(rows, keys):
            raise RowsOverlap()
        outcomes: dict[int, RowOutcome] = {}
        outcomes.update(await _reference_errors(session, principal, rows))
        matched = await match_rows(rows, keys, "contact")
        created: list[tuple[int, Contact]] = []
        changed: list[tuple[int, Contact, Changes]] = []
        for index, data in rows:
            if index in outcomes:
                continue
            match = matched.get(index)
            try:
                if isinstance(match, ProblemError):
                    raise match
                if match is None:
                    created.append((index, _new_contact(data, principal, data.external_id)))
                else:
                    changed.append((index, match, _apply(match, data, principal)))
            except ProblemError as error:
                outcomes[index] = error
        await _save_changes(session, principal, [(c, changes) for _, c, changes in changed])
        await _insert(session, principal, [contact for _, contact in created])
        outcomes.update({i: Written(c, True, {}) for i, c in created})
        outcomes.update({i: Written(c, False, changes) for i, c, changes in changed})
        return outcomes

    async def write_one(data: ContactUpdate) -> Written:
        match = (await match_rows([(0, data)], keys, "contact")).get(0)
        if isinstance(match, ProblemError):
            raise match
        await _check_references(session, principal, data, match)
        if match is None:
            contact = _new_contact(data, principal, data.external_id)
            await _insert(session, principal, [contact])
            return Written(contact, True, {})
        changes = _apply(match, data, principal)
        await _save_changes(session, principal, [(match, changes)])
        return Written(match, False, changes)

    return await write_rows(session, rows, write_all, write_one)


class ContactMerged(ProblemError):
    status, slug, title = 301, "contact-merged", "Contact merged"


async def get_contact_or_where_it_went(
    session: AsyncSession, principal: Principal, id: uuid.UUID
) -> Contact:
    """The contact; for one merged into another, a 301 problem leading to that one."""
    repository = ContactRepository(session)
    contact = await repository.get(principal.workspace_id, id)
    if contact is not None:
        return contact
    survivor_id = await repository.merged_into(principal.workspace_id, id)
    if survivor_id is not None:
        raise ContactMerged(
            f"This contact was merged into {survivor_id}.",
            headers={"Location": f"/v1/contacts/{survivor_id}"},
            merged_into_id=str(survivor_id),
        )
    raise NotFound(f"No contact with id {id}.")


async def merge_contacts(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: ContactMerge,
    if_match: str | None,
) -> ContactMergeResult:
    """Merge `data.merge_ids` into contact `id`: it takes their fields by the rule, their
    emails, phones and tags, and every record that pointed at them; they become tombstones
    whose ids lead to it. With dry_run, all of it is done and then undone."""
    if if_match is None or if_match.strip() == "*":
        raise PreconditionRequired(
            "Send the survivor's ETag as If-Match: a merge is not undone, so it must be made "
            "against the version you looked at."
        )
    repository = ContactRepository(session)
    workspace_id = principal.workspace_id
    merge_ids = list(dict.fromkeys(data.merge_ids))
    # All of them locked in id order, so merges that cross (A into B, B into A) never deadlock.
    found = await repository.holding(workspace_id, "id", sorted({id, *merge_ids}))
    if id not in found:
        raise NotFound(f"No contact with id {id}.")
    survivor = found[id][0]
    check_if_match(if_match, survivor.version)
    if id in merge_ids:
        raise InvalidInput(("body", "merge_ids"), "A contact is not merged into itself.")
    missing = [other for other in merge_ids if other not in found]
    if missing:
        raise InvalidInput(("body", "merge_ids"), f"No contact with id {missing[0]}.")
    for field, source in data.fields.items():
        if source != id and source not in found:
            raise InvalidInput(
                ("body", "fields", str(field)), "Name the survivor or one of merge_ids."
            )
    others = [found[other][0] for other in merge_ids]
    values = merged_values(survivor, others, data.rule, {str(f): s for f, s in data.fields.items()})
    savepoint = await session.begin_nested()
    await repository.release_emails(workspace_id, merge_ids)
    for other in others:
        soft_delete(other)
        other.merged_into_id = survivor.id
    await session.flush()  # tombstones first: the survivor may take one's external_id
    changes: Changes = {}
    for name, value in values.items():
        assign(survivor, changes, name, value)
    await _save_changes(session, principal, [(survivor, changes)])
    moved = await merged(session, "contact", workspace_id, merge_ids, survivor.id)
    # Contacts merged into these before now lead to the survivor too.
    await repoint(session, Contact, "merged_into_id", workspace_id, merge_ids, survivor.id)
    result = ContactMergeResult(
        id=survivor.id,
        dry_run=data.dry_run,
        merged_ids=merge_ids,
        moved=MergeMoves.model_validate(moved),
        survivor=ContactRead.model_validate(survivor),
    )
    if data.dry_run:
        await savepoint.rollback()
        return result
    for other in others:
        announce(session, "deleted", other)
    emit(session, workspace_id, "contact.merged", result)
    await savepoint.commit()
    return result


async def list_duplicates(
    session: AsyncSession, principal: Principal, params: DuplicateListParams
) -> tuple[list[DuplicateGroup], str | None]:
    """Likely duplicates, a group per shared key, best evidence first."""
    reasons = [params.reason] if params.reason else list(DuplicateReason)
    print_ = fingerprint("duplicates", {"reasons": reasons, "min_score": params.min_score})
    after = None
    if params.cursor:
        rank_key = decode_cursor(params.cursor, DUPLICATE_ORDER, print_)
        after = (int(rank_key[0]), str(rank_key[1]))
    repository = ContactRepository(session)
    rows = await repository.duplicate_groups(
        principal.workspace_id,
        reasons=[str(r) for r in reasons],
        min_score=params.min_score,
        after=after,
        limit=params.limit + 1,
    )
    page, more = rows[: params.limit], len(rows) > params.limit
    contacts = await repository.live_by_ids(
        principal.workspace_id, [i for *_, ids in page for i in ids]
    )
    groups = [
        DuplicateGroup(
            reason=DuplicateReason(reason),
            key=key,
            score=score,
            contacts=[ContactRead.model_validate(contacts[i]) for i in ids if i in contacts],
        )
        for _, reason, key, score, ids in page
    ]
    next_cursor = encode_cursor([page[-1][0], page[-1][2]], print_) if more else None
    return groups, next_cursor


# Whom a merged contact referred, the survivor referred.
repoint_on_merge("contact", "referrals", Contact, "referred_by_id")
