from types import SimpleNamespace

from crm_api.core.patch import Changes, assign, merge_patch


def test_assign_records_only_real_changes() -> None:
    record = SimpleNamespace(name="a")
    changes: Changes = {}
    assign(record, changes, "name", "a")
    assert changes == {}
    assign(record, changes, "name", "b")
    assign(record, changes, "name", "c")
    assert changes == {"name": ("a", "c")}
    assign(record, changes, "name", "a")
    assert changes == {}
    assert record.name == "a"


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch(None, {"a": 1}) == {"a": 1}
    assert merge_patch({"a": 1}, ["x"]) == ["x"]
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}  # the target is not mutated
