"""Phone numbers in E.164, read with the workspace's default country when they lack a code."""

from collections.abc import Sequence

import phonenumbers

from crm_api.core.errors import InvalidInput


def normalize_phone(raw: str, default_country: str | None, loc: Sequence[str | int]) -> str:
    try:
        number = phonenumbers.parse(raw, default_country)
    except phonenumbers.NumberParseException:
        hint = "" if default_country else " (this workspace has no default country)"
        raise InvalidInput(
            loc, f"`{raw}` is not a phone number; write it as +<country code><number>{hint}."
        ) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(loc, f"`{raw}` has the wrong number of digits for its country.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
