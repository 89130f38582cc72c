import pytest

from crm_api.webhooks.catalog import (
    SUBSCRIBABLE,
    TEST_EVENT,
    EventTypePattern,
    matches,
    wildcards_of,
)


def test_every_event_type_comes_with_its_wildcards_and_nothing_else() -> None:
    assert {p.value for p in EventTypePattern} == SUBSCRIBABLE | wildcards_of(SUBSCRIBABLE)
    assert TEST_EVENT not in {p.value for p in EventTypePattern}


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["*"], "contact.created", True),
        (["contact.*"], "contact.updated", True),
        (["contact.*"], "company.updated", False),
        (["*.deleted"], "company.deleted", True),
        (["*.deleted"], "company.created", False),
        (["contact.created"], "contact.created", True),
        (["contact.created"], "contact.updated", False),
        (["company.*", "*.deleted"], "contact.deleted", True),
        ([], "contact.created", False),
    ],
)
def test_matching(patterns: list[str], event_type: str, expected: bool) -> None:
    assert matches(patterns, event_type) is expected
