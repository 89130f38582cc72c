"""RFC 9457 problem details: the one error format of the API."""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://crm-api.dev/problems/"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the error is: `body`, `query`, `header`, …")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem; extension members depend on `type`."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "https://crm-api.dev/problems/not-found",
                "title": "Not found",
                "status": 404,
                "detail": "No contact with id 0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10.",
                "instance": "/v1/contacts/0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10",
            }
        },
    )

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="On validation problems: one entry per invalid input."
    )


class ProblemError(Exception):
    """Raised anywhere below the router; rendered as problem+json by the handler below."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str) -> dict[str, Any]:
        return problem_body(
            self.status, self.slug, self.title, self.detail, instance, **self.extensions
        )


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthenticated(ProblemError):
    status, slug, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="crm-api"'})


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(ProblemError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PreconditionRequired(ProblemError):
    status, slug, title = 428, "precondition-required", "Precondition required"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class InvalidInput(ProblemError):
    status, slug, title = 422, "validation-error", "Invalid input"

    def __init__(self, loc: Sequence[str | int], msg: str, type: str = "value_error") -> None:
        super().__init__(msg, errors=[{"loc": list(loc), "msg": msg, "type": type}])


def problem_body(
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    instance: str,
    **extensions: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body["instance"] = instance
    body.update(extensions)
    return body


def problem_response(
    request: Request, status: int, slug: str, title: str, detail: str | None, **extensions: Any
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, slug, title, detail, request.url.path, **extensions),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
    )


@dataclass(frozen=True)
class ConstraintProblem:
    """What a violated database constraint means to the client."""

    status: int
    loc: tuple[str, ...]
    msg: str


# Filled by the domains' models (register_constraint) so the handler can name the field.
CONSTRAINT_PROBLEMS: dict[str, ConstraintProblem] = {}


def register_constraint(name: str, status: int, loc: tuple[str, ...], msg: str) -> None:
    CONSTRAINT_PROBLEMS[name] = ConstraintProblem(status, loc, msg)


# SQLSTATEs of errors caused by the data sent, not by the server.
_CLIENT_SQLSTATES = {
    "23505": 409,  # unique_violation
    "23503": 422,  # foreign_key_violation
    "23514": 422,  # check_violation
    "23502": 422,  # not_null_violation
    "22001": 422,  # string_data_right_truncation
    "22003": 422,  # numeric_value_out_of_range
    "22P02": 422,  # invalid_text_representation
    "22007": 422,  # invalid_datetime_format
    "22008": 422,  # datetime_field_overflow
    "22021": 422,  # character_not_in_repertoire
    "22P05": 422,  # untranslatable_character (\u0000)
}


def _driver_error(exc: DBAPIError) -> Any:
    return getattr(exc.orig, "__cause__", None) or exc.orig


def render_problem(request: Request, problem: ProblemError) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


async def _handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return render_problem(request, exc)


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else None
    detail = (
        f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        if first
        else "The request is invalid."
    )
    return problem_response(
        request, 422, "validation-error", "Invalid input", detail, errors=errors
    )


def record_allowed_methods(app: FastAPI, router: APIRouter, prefix: str) -> None:
    """Remember every path's methods: a 405's `Allow` must list all of them (RFC 9110 §15.5.6),
    not just those of the first route whose path matched, as Starlette's does. Paths without
    parameters are remembered apart: they win over templates (core/routing.py)."""
    if not hasattr(app.state, "allowed_methods"):
        app.state.allowed_methods = []
        app.state.concrete_paths = set()
    table: list[tuple[re.Pattern[str], set[str], bool]] = app.state.allowed_methods
    for route in router.routes:
        if isinstance(route, APIRoute):
            regex, _, convertors = compile_path(prefix + route.path)
            table.append((regex, set(route.methods or ()), not convertors))
            if not convertors:
                app.state.concrete_paths.add(prefix + route.path)


def _allowed_methods(request: Request) -> str | None:
    table = getattr(request.app.state, "allowed_methods", [])
    matching = [(concrete, m) for regex, m, concrete in table if regex.match(request.url.path)]
    if any(concrete for concrete, _ in matching):
        matching = [(concrete, m) for concrete, m in matching if concrete]
    methods = set().union(*(m for _, m in matching))
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    slug = phrase.lower().replace(" ", "-").replace("'", "")
    response = problem_response(request, exc.status_code, slug, phrase, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        response.headers["Allow"] = allowed
    return response


class InvalidData(ProblemError):
    status, slug, title = 422, "validation-error", "Invalid input"


def database_problem(exc: DBAPIError) -> ProblemError | None:
    """What a database error caused by the data sent means to the client; None when it is the
    server's fault."""
    driver = _driver_error(exc)
    sqlstate = getattr(driver, "sqlstate", None)
    constraint = getattr(driver, "constraint_name", None)
    known = CONSTRAINT_PROBLEMS.get(constraint or "")
    if known is not None:
        kind = Conflict if known.status == 409 else InvalidData
        errors = [{"loc": list(known.loc), "msg": known.msg, "type": "constraint"}]
        return kind(known.msg, errors=errors)
    if sqlstate == "42501":  # insufficient_privilege: a row-level security policy refused
        logger.warning("refused by the database: %s", driver)
        return Forbidden("The record is outside what this API key may see or change.")
    if sqlstate in _CLIENT_SQLSTATES:
        logger.warning("unmapped client data error %s (%s)", sqlstate, constraint)
        kind = Conflict if _CLIENT_SQLSTATES[sqlstate] == 409 else InvalidData
        return kind("The data violates a constraint.")
    if isinstance(exc, IntegrityError):
        return Conflict()
    return None


class ServiceUnavailable(ProblemError):
    status, slug, title = 503, "unavailable", "Service unavailable"


# What a database that is down, restarting or out of connections raises, at any depth of the
# exception's chain: SQLSTATE classes 08 (connection) and 57 (shutdown, starting up), and the
# socket errors of a server that is not there (refused on TCP, a missing file on a Unix socket).
# asyncpg's connection errors carry those SQLSTATEs; its InterfaceError also means misuse (a
# bug), which stays a 500.
_UNREACHABLE = (OSError, TimeoutError, PoolTimeout)


def database_unavailable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _UNREACHABLE):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if str(getattr(seen, "sqlstate", "") or "").startswith(("08", "57")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unavailable_response(
    request: Request,
    detail: str = "The database does not answer; nothing was changed. Try again shortly.",
) -> JSONResponse:
    return render_problem(request, ServiceUnavailable(detail, headers={"Retry-After": "2"}))


async def _handle_dbapi(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    problem = database_problem(exc)
    if problem is None:
        return await handle_unexpected(request, exc)
    return render_problem(request, problem)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        logger.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
        return unavailable_response(request)
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, 500, "internal-error", "Internal server error", "The error has been logged."
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _handle_problem)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(DBAPIError, _handle_dbapi)
    app.add_exception_handler(Exception, handle_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring problem+json bodies for the given statuses."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
