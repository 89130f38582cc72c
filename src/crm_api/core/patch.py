"""Applying writes to ORM records: only real changes count, and they are reported."""

from typing import Any

# field → (old, new); empty when nothing changed.
# What stands for a value that must not be shown (a secret) in events and the audit log.
HIDDEN = "********"

Changes = dict[str, tuple[Any, Any]]


def assign(record: Any, changes: Changes, field: str, value: Any) -> None:
    """Set the field if the value differs; `changes` keeps the value from before the first
    assignment, and forgets the field when it ends where it started."""
    old = getattr(record, field)
    if old == value:
        return
    setattr(record, field, value)
    original = changes[field][0] if field in changes else old
    if original == value:
        del changes[field]
    else:
        changes[field] = (original, value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
