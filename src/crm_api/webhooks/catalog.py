"""Every event type the API emits, and the patterns endpoints subscribe with."""

import re

RESOURCE_ACTIONS = {
    "contact": ("created", "updated", "deleted"),
    "company": ("created", "updated", "deleted"),
    "api_key": ("created", "deleted"),
    "webhook_endpoint": ("created", "updated", "deleted", "disabled"),
    "webhook": ("test",),
}
EVENT_TYPES = frozenset(
    f"{resource}.{action}" for resource, actions in RESOURCE_ACTIONS.items() for action in actions
)
ACTIONS = frozenset(action for actions in RESOURCE_ACTIONS.values() for action in actions)

# An exact type, `<resource>.*`, `*.<action>` or `*`.
PATTERN_SYNTAX = re.compile(r"^(\*|[a-z_]+\.\*|\*\.[a-z_]+|[a-z_]+\.[a-z_]+)$")


def pattern_problem(pattern: str) -> str | None:
    """Why a subscription pattern can never match, or None when it is fine."""
    if not PATTERN_SYNTAX.match(pattern):
        return "expected an event type, `<resource>.*`, `*.<action>` or `*`"
    resource, _, action = pattern.partition(".")
    if pattern == "*" or (resource == "*" and action in ACTIONS):
        return None
    if action == "*" and resource in RESOURCE_ACTIONS:
        return None
    if pattern in EVENT_TYPES:
        return None
    return f"`{pattern}` matches no event type"


def matches(patterns: list[str], event_type: str) -> bool:
    resource, _, action = event_type.partition(".")
    return any(p in ("*", event_type, f"{resource}.*", f"*.{action}") for p in patterns)
