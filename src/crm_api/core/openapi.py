"""The published OpenAPI document: adjustments FastAPI cannot be told directly."""

from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from crm_api.core.errors import PROBLEM_MEDIA_TYPE
from crm_api.core.roles import Role, roles_granting
from crm_api.core.scopes import Scope

# Any request with a body may be malformed (400) or too large (413); any may have headers too
# large (431), fail (500) or find the database unavailable (503, with Retry-After).
BODY_PROBLEMS = (400, 413)
ALWAYS = (431, 500, 503)
RETRY_AFTER_STATUSES = ("429", "503")
# Every answer carries its request id; an authenticated one, where its key stands in its rate
# limit (core/rate_limits.py), and past the quota it is a 429 with Retry-After.
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the one sent, when well-formed, else a new UUID.",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'The API key\'s quota and window: `"default";q=600;w=60`.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "What remains of the quota and the seconds until it renews: "
        '`"default";r=42;t=17`.',
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again: until the quota renews (429), or "
        "while the database is unavailable (503).",
        "schema": {"type": "integer"},
    },
}
RATE_LIMIT_HEADERS = ("RateLimit-Policy", "RateLimit")


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def finish_openapi(app: FastAPI) -> None:
    """Errors are problem+json only (FastAPI also lists `application/json` for a response with a
    model); every operation declares 500, and those with a body the problems any body can
    cause."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    statuses = ALWAYS + (BODY_PROBLEMS if "requestBody" in operation else ())
                    limited = "security" in operation
                    if limited:
                        statuses += (429,)
                    for status in statuses:
                        responses.setdefault(str(status), _problem(status))
                    for status, response in responses.items():
                        content = response.get("content", {})
                        if PROBLEM_MEDIA_TYPE in content:
                            content.pop("application/json", None)
                        names = ["X-Request-ID", *(RATE_LIMIT_HEADERS if limited else ())]
                        if status in RETRY_AFTER_STATUSES:
                            names.append("Retry-After")
                        headers = response.setdefault("headers", {})
                        for name in names:
                            headers[name] = {"$ref": f"#/components/headers/{name}"}
            _document_scopes(app, schema)
            schema.setdefault("components", {})["headers"] = HEADERS
            _mark_uploads(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _required_scope(dependant: Dependant) -> Scope | None:
    for dependency in dependant.dependencies:
        scope = getattr(dependency.call, "required_scope", None) or _required_scope(dependency)
        if scope is not None:
            return Scope(scope)
    return None


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # an included router, as it was
        if included is not None:
            yield from _api_routes(included.routes)


def _document_scopes(app: FastAPI, schema: dict[str, Any]) -> None:
    """Each secured operation names the scope it needs (in its security requirement, as OpenAPI
    3.1 allows for any scheme) and the roles that have it (`x-roles`, and in its description)."""
    by_id = {
        operation["operationId"]: operation
        for item in schema["paths"].values()
        for operation in item.values()
    }
    for route in _api_routes(app.routes):
        scope = _required_scope(route.dependant)
        operation = by_id.get(route.name)
        if operation is not None and "security" in operation:
            _document_roles(operation, scope)


def _document_roles(operation: dict[str, Any], scope: Scope | None) -> None:
    roles = roles_granting(scope) if scope is not None else list(Role)
    operation["x-roles"] = [str(role) for role in roles]
    needs = f"Scope `{scope}`; roles" if scope is not None else "Any API key; roles"
    line = f"{needs}: {', '.join(f'`{role}`' for role in roles)}."
    described = operation.get("description")
    operation["description"] = f"{described}\n\n{line}" if described else line
    if scope is not None:
        operation["security"] = [
            {name: [str(scope)]} for each in operation["security"] for name in each
        ]


def _mark_uploads(schema: dict[str, Any]) -> None:
    """An uploaded file is `contentMediaType: application/octet-stream` in OpenAPI 3.1, which
    client generators (openapi-python-client among them) read as text; `format: binary` too
    makes them send a file."""
    for component in schema.get("components", {}).get("schemas", {}).values():
        for field in component.get("properties", {}).values():
            if field.get("contentMediaType") == "application/octet-stream":
                field["format"] = "binary"


def links(parameter: str, *operation_ids: str, field: str = "id") -> dict[str, Any]:
    """OpenAPI links from a response carrying a record's `id` (or another field) to the
    operations on that record; clients and schemathesis' stateful tests follow them."""
    value = f"$response.body#/{field}"
    return {
        operation_id: {"operationId": operation_id, "parameters": {parameter: value}}
        for operation_id in operation_ids
    }
