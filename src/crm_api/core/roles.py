"""Roles: named bundles of scopes for keys and users, so a workspace grants a job rather than a
list. A key's scopes are its role's and any it was given besides; a key acting as a user can do
no more than the user's role allows. Sales and support users may be held to their own records
(core/tenancy.py)."""

from collections.abc import Iterable
from enum import StrEnum

from crm_api.core.scopes import Scope


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    sales = "sales"
    support = "support"
    analyst = "analyst"
    integration = "integration"


def _reads(*resources: str) -> set[Scope]:
    return {Scope(f"{resource}:read") for resource in resources}


def _writes(*resources: str) -> set[Scope]:
    return {Scope(f"{resource}:write") for resource in resources}


READABLE = tuple(s.value.removesuffix(":read") for s in Scope if s.value.endswith(":read"))
CRM_RECORDS = ("contacts", "companies", "deals", "tickets", "interactions", "feedback", "orders")

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.admin: frozenset({Scope.admin}),
    # Runs the team: every record and its set-up, the metrics; no keys, webhooks or audit log.
    Role.manager: frozenset(
        _writes(*CRM_RECORDS, "pipelines", "segments", "sla_policies", "imports", "users")
        | _writes("custom_fields", "metrics", "loyalty", "scoring", "playbooks")
        | _reads("events")
    ),
    Role.sales: frozenset(
        _writes("contacts", "companies", "deals", "interactions")
        | _reads("pipelines", "segments", "custom_fields", "users", "orders", "feedback")
        | _reads("tickets", "metrics", "loyalty", "scoring", "playbooks")
    ),
    Role.support: frozenset(
        _writes("contacts", "tickets", "interactions", "feedback", "loyalty")
        | _reads("companies", "sla_policies", "custom_fields", "users", "orders", "segments")
        | _reads("deals", "playbooks")
    ),
    # Reads everything the CRM holds and runs the models; changes no record.
    Role.analyst: frozenset(
        _reads(*(r for r in READABLE if r not in ("webhooks", "audit_log"))) | _writes("metrics")
    ),
    # A system kept in sync: writes records, subscribes to webhooks, reads the event feed.
    Role.integration: frozenset(
        _writes(*CRM_RECORDS, "imports", "webhooks", "loyalty")
        | _reads("pipelines", "custom_fields", "users", "segments", "sla_policies", "events")
    ),
}

ROLE_NAMES = tuple(role.value for role in Role)  # for CHECK constraints

# Roles whose users may be held to the records they or their teams own.
OWN_RECORDS_ROLES = frozenset({Role.sales, Role.support})


ROLES_DESCRIPTION = (
    "A bundle of scopes: "
    + "; ".join(
        f"`{role}`: {', '.join(f'`{s}`' for s in sorted(ROLE_SCOPES[role]))}" for role in Role
    )
    + ". A write scope lets the key read the same resource too."
)


def key_scopes(role: Role | None, scopes: Iterable[str]) -> frozenset[str]:
    """A key's scopes: its role's, and those it was given besides."""
    return frozenset(scopes) | (ROLE_SCOPES[role] if role is not None else frozenset())


def within(scopes: frozenset[str], bound: frozenset[str]) -> frozenset[str]:
    """What both allow: a key acting as a user does no more than the user's role lets it."""
    return frozenset(s.value for s in Scope if allows(scopes, s) and allows(bound, s))


def roles_granting(scope: Scope) -> list[Role]:
    """The roles that may call an operation needing this scope (for the API docs)."""
    return [role for role in Role if allows(ROLE_SCOPES[role], scope)]


def allows(scopes: frozenset[str], scope: Scope) -> bool:
    if Scope.admin in scopes or scope in scopes:
        return True
    # A write scope implies reading the same resource.
    return scope.endswith(":read") and scope.replace(":read", ":write") in scopes
