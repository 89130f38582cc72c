import json
from pathlib import Path

from crm_api.app import create_app

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app() -> None:
    """Regenerate with `crm-api openapi export` when this fails, and commit the result."""
    assert json.loads(SPEC.read_text()) == create_app().openapi()


def test_operation_ids_are_unique_and_named_for_their_resource() -> None:
    spec = create_app().openapi()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert {"contacts_list", "contacts_create", "companies_get", "api_keys_revoke"} <= set(ids)


def test_every_operation_declares_problems_and_bodies_have_examples() -> None:
    spec = create_app().openapi()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            errors = [s for s in operation["responses"] if s.startswith(("4", "5"))]
            assert {"500", "503"} <= set(errors), (method, path)
            retry_after = operation["responses"]["503"]["headers"]["Retry-After"]
            assert retry_after == {"$ref": "#/components/headers/Retry-After"}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                schema = spec["components"]["schemas"][body["schema"]["$ref"].split("/")[-1]]
                assert schema.get("examples"), (method, path)


def test_errors_are_declared_as_problem_json_only() -> None:
    spec = create_app().openapi()
    for path in spec["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], status
