"""Which values a merged contact keeps. Pure: contacts in, field values out."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from crm_api.contacts.models import Contact
from crm_api.contacts.schemas import MERGEABLE_FIELDS, MergeRule

MAX_TAGS = 50


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def precedence(survivor: Contact, others: Sequence[Contact], rule: MergeRule) -> list[Contact]:
    """The contacts from the one whose values win to the one whose values win last."""
    if rule is MergeRule.newest:
        return sorted([survivor, *others], key=lambda c: (c.updated_at, c.id), reverse=True)
    return [survivor, *others]


def _unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v))


def _latest_consent(contacts: Sequence[Contact]) -> dict[str, Any]:
    consent = dict(contacts[0].consent)
    for channel in consent:
        given = [
            c.consent[channel]
            for c in contacts
            if c.consent.get(channel, {}).get("status", "unknown") != "unknown"
        ]
        if given:
            consent[channel] = max(given, key=lambda g: datetime.fromisoformat(g["updated_at"]))
    return consent


def merged_values(
    survivor: Contact,
    others: Sequence[Contact],
    rule: MergeRule,
    chosen: Mapping[str, uuid.UUID],
) -> dict[str, Any]:
    """The survivor's fields after the merge: each field from the contact `chosen` names for it,
    else the first in precedence that has a value; every email, phone and tag of them all."""
    ordered = precedence(survivor, others, rule)
    by_id = {c.id: c for c in ordered}
    values: dict[str, Any] = {}
    for field in MERGEABLE_FIELDS:
        if field in chosen:
            values[field] = getattr(by_id[chosen[field]], field)
        else:
            present = [getattr(c, field) for c in ordered if _present(getattr(c, field))]
            values[field] = present[0] if present else None
    emails = _unique([e for c in ordered for e in (c.email, *c.additional_emails)])
    values["additional_emails"] = [e for e in emails if e != values["email"]]
    phones = _unique([p for c in ordered for p in (c.phone, *c.additional_phones)])
    values["additional_phones"] = [p for p in phones if p != values["phone"]]
    values["tags"] = _unique([t for c in ordered for t in c.tags])[:MAX_TAGS]
    custom_fields: dict[str, Any] = {}
    for contact in reversed(ordered):
        custom_fields.update(contact.custom_fields)
    values["custom_fields"] = custom_fields
    values["consent"] = _latest_consent(ordered)
    return values
