"""The published OpenAPI document: adjustments FastAPI cannot be told directly."""

from typing import Any

from fastapi import FastAPI

from crm_api.core.errors import PROBLEM_MEDIA_TYPE


def problem_json_only(app: FastAPI) -> None:
    """Error responses are declared with a model (so `Problem` lands in the components), which
    makes FastAPI also list `application/json`; the API only ever sends problem+json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for response in operation.get("responses", {}).values():
                        content = response.get("content", {})
                        if PROBLEM_MEDIA_TYPE in content:
                            content.pop("application/json", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
