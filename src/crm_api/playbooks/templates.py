"""Message templates: `{{name}}` placeholders, `{{name|fallback}}` for when the value is
missing. Plain substitution of a fixed set of names, nothing evaluated."""

import re
from collections.abc import Mapping

PLACEHOLDERS = ("first_name", "last_name", "full_name", "email", "company_name", "offer")
PLACEHOLDERS_DESCRIPTION = (
    "Placeholders: "
    + ", ".join(f"`{{{{{name}}}}}`" for name in PLACEHOLDERS)
    + "; `{{first_name|there}}` gives `there` when the contact has no first name."
)
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*(?:\|([^{}]*))?\}\}")


def unknown_placeholders(template: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(template) if m.group(1) not in PLACEHOLDERS]


def render(template: str, values: Mapping[str, str | None]) -> str:
    def value_of(match: re.Match[str]) -> str:
        return values.get(match.group(1)) or (match.group(2) or "").strip()

    return PLACEHOLDER.sub(value_of, template)
