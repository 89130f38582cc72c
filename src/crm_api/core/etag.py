"""Optimistic concurrency: `ETag: "<version>"`, `If-Match` → 412 when stale."""

from typing import Annotated

from fastapi import Header, Response

from crm_api.core.errors import PreconditionFailed

IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The ETag you read; the write is refused with 412 if the record changed since.",
    ),
]


def etag_of(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag_of(version)


def check_if_match(if_match: str | None, version: int) -> None:
    """RFC 9110 §13.1.1: strong comparison against a list of tags, or `*`."""
    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags or etag_of(version) in tags:
        return
    raise PreconditionFailed(
        f"The record is at version {version}; read it again and retry with its ETag.",
        current_etag=etag_of(version),
    )


IfNoneMatchHeader = Annotated[
    str | None,
    Header(alias="If-None-Match", description="An ETag you hold; 304 if the record is unchanged."),
]


def is_not_modified(if_none_match: str | None, version: int) -> bool:
    """RFC 9110 §13.1.2: weak comparison, so `W/"3"` matches too."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag_of(version) in tags
