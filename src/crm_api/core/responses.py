"""Response headers the record endpoints share, and their OpenAPI declarations."""

from typing import Any, TypeVar

from fastapi import Response
from pydantic import BaseModel

from crm_api.core.etag import is_not_modified, set_etag


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


ETAG_HEADER = {"ETag": _header("The record's version, to send back as `If-Match`.")}
LINK_HEADER = {"Link": _header('RFC 8288 link to the next page, `rel="next"`.')}
LOCATION_HEADER = {"Location": _header("URL of the created record.")}


def created(response: Response, version: int, location: str) -> None:
    """201 headers: where the new record lives, and its ETag."""
    response.headers["Location"] = location
    set_etag(response, version)


def upserted(response: Response, version: int, created_at_location: str | None) -> None:
    """201 with `Location` when the upsert created the record, else 200; ETag on both."""
    if created_at_location is not None:
        response.status_code = 201
        created(response, version, created_at_location)
    else:
        set_etag(response, version)


def not_modified(if_none_match: str | None, version: int) -> Response | None:
    """A 304 when the client's copy is current."""
    if is_not_modified(if_none_match, version):
        response = Response(status_code=304)
        set_etag(response, version)
        return response
    return None


# A workspace document (core/documents.py): read with its ETag, replaced whole by PUT.
DOCUMENT_GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": ETAG_HEADER},
    304: {"description": "Not modified"},
}
DOCUMENT_PUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": ETAG_HEADER, "description": "Replaced"},
    201: {"headers": ETAG_HEADER, "description": "Created"},
}
S = TypeVar("S", bound=BaseModel)


def document_read(
    response: Response, if_none_match: str | None, document: Any, schema: type[S]
) -> S | Response:
    """The document with its ETag, or 304 when the client's copy is current."""
    if (unchanged := not_modified(if_none_match, document.version)) is not None:
        return unchanged
    set_etag(response, document.version)
    return schema.model_validate(document)


def document_put(response: Response, document: Any, created: bool, schema: type[S]) -> S:
    """201 when the PUT created the document, else 200; its ETag either way."""
    response.status_code = 201 if created else 200
    set_etag(response, document.version)
    return schema.model_validate(document)
