"""Response headers the record endpoints share, and their OpenAPI declarations."""

from typing import Any

from fastapi import Response

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
