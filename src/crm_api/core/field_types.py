"""The types a custom field can have, and what a value of each must look like. Writes check
values with `check_value`; the filter language compares them as the type says."""

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email


class CustomFieldResource(StrEnum):
    """The resources that carry `custom_fields`; each value is also the resource's table."""

    contacts = "contacts"
    companies = "companies"
    deals = "deals"
    tickets = "tickets"
    orders = "orders"
    interactions = "interactions"
    feedback = "feedback"


class FieldType(StrEnum):
    text = "text"
    number = "number"
    decimal = "decimal"
    date = "date"
    datetime = "datetime"
    boolean = "boolean"
    select = "select"
    multi_select = "multi_select"
    email = "email"
    url = "url"


MAX_TEXT_LENGTH = 10_000
DECIMAL_PATTERN = re.compile(r"^-?[0-9]{1,20}([.][0-9]{1,10})?$")
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# RFC 3339 with its offset: what PostgreSQL's timestamptz reads back the same way.
DATETIME_PATTERN = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


class UnfitValue(ValueError):
    """The value is not one of the field's type; the message says what is expected."""


def check_value(type: FieldType, options: frozenset[str], value: Any) -> Any:
    """The value, when it fits the type; UnfitValue otherwise."""
    checker = _CHECKERS[type]
    return checker(value, options)


def _text(value: Any, _: frozenset[str]) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise UnfitValue(f"Expected a string of at most {MAX_TEXT_LENGTH:,} characters.")
    return value


def _number(value: Any, _: frozenset[str]) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise UnfitValue("Expected a JSON number.")
    return value


def _decimal(value: Any, _: frozenset[str]) -> str:
    if not isinstance(value, str) or not DECIMAL_PATTERN.match(value):
        raise UnfitValue('Expected a decimal string such as "12.50".')
    return value


def _date(value: Any, _: frozenset[str]) -> str:
    try:
        if isinstance(value, str) and DATE_PATTERN.match(value):
            date.fromisoformat(value)
            return value
    except ValueError:
        pass
    raise UnfitValue("Expected a date, YYYY-MM-DD.")


def _datetime(value: Any, _: frozenset[str]) -> str:
    try:
        if isinstance(value, str) and DATETIME_PATTERN.match(value):
            datetime.fromisoformat(value)
            return value
    except ValueError:
        pass
    raise UnfitValue("Expected an RFC 3339 date-time with offset, such as 2026-01-31T09:00:00Z.")


def _boolean(value: Any, _: frozenset[str]) -> bool:
    if not isinstance(value, bool):
        raise UnfitValue("Expected true or false.")
    return value


def _select(value: Any, options: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise UnfitValue(f"Expected one of: {', '.join(sorted(options))}.")
    return value


def _multi_select(value: Any, options: frozenset[str]) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v in options for v in value):
        raise UnfitValue(f"Expected a list of: {', '.join(sorted(options))}.")
    return value


def _email(value: Any, _: frozenset[str]) -> str:
    if not isinstance(value, str):
        raise UnfitValue("Expected an email address.")
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise UnfitValue("Expected an email address.") from None
    return value


def _url(value: Any, _: frozenset[str]) -> str:
    if isinstance(value, str) and len(value) <= 2048:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
    raise UnfitValue("Expected an http or https URL.")


_CHECKERS = {
    FieldType.text: _text,
    FieldType.number: _number,
    FieldType.decimal: _decimal,
    FieldType.date: _date,
    FieldType.datetime: _datetime,
    FieldType.boolean: _boolean,
    FieldType.select: _select,
    FieldType.multi_select: _multi_select,
    FieldType.email: _email,
    FieldType.url: _url,
}
