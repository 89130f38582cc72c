import uuid
from datetime import UTC, datetime

import pytest

from crm_api.contacts.models import Contact
from crm_api.core.errors import InvalidInput
from crm_api.core.pagination import SortField, decode_cursor, encode_cursor, parse_sort

ID = SortField(Contact.id, uuid.UUID)
SORTS = {
    "created_at": SortField(Contact.created_at, datetime),
    "name": SortField(Contact.last_name, str),
}


def test_cursor_round_trip() -> None:
    order, _ = parse_sort("-created_at,name", SORTS, ID)
    values = (datetime(2026, 11, 23, 8, 1, 2, 345678, tzinfo=UTC), "Nguyễn", uuid.uuid4())
    assert decode_cursor(encode_cursor(values, "f1"), order, "f1") == values


def test_the_id_follows_the_first_direction() -> None:
    order, _ = parse_sort("-created_at", SORTS, ID)
    assert [key.descending for key in order] == [True, True]


@pytest.mark.parametrize("cursor", ["", "!!!", "eyJ2IjpbMV0sImYiOiJmMSJ9", "bnVsbA"])
def test_malformed_cursors_are_invalid_input(cursor: str) -> None:
    order, _ = parse_sort(None, SORTS, ID)
    with pytest.raises(InvalidInput):
        decode_cursor(cursor, order, "f1")


def test_cursor_of_another_query_is_refused() -> None:
    order, _ = parse_sort(None, SORTS, ID)
    cursor = encode_cursor((datetime.now(UTC), uuid.uuid4()), "f1")
    with pytest.raises(InvalidInput, match="other filters"):
        decode_cursor(cursor, order, "f2")
