"""CommitRoute: one session and one transaction per request, committed after the endpoint and its
serialisation succeed, so a failed commit becomes a problem response, never a 2xx."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from crm_api.core.errors import problem_responses
from crm_api.core.idempotency import IdempotentReplay, PendingIdempotency, store_response
from crm_api.core.tenancy import leave_workspace


class CommitRoute(APIRoute):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # As OpenAPI reads paths, a concrete one (/deals/forecast) is never taken for a
        # template's parameter (/deals/{deal_id}), whatever the method: PATCH there is a 405.
        match, child_scope = super().matches(scope)
        concrete: set[str] = getattr(scope["app"].state, "concrete_paths", set())
        if match is not Match.NONE and self.param_convertors and scope["path"] in concrete:
            return Match.NONE, {}
        return match, child_scope

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle_in_transaction(request: Request) -> Response:
            async with request.app.state.sessionmaker() as session:
                request.state.session = session
                try:
                    response = await handler(request)
                except IdempotentReplay as replay:
                    return replay.response()
                if response.status_code < 400:
                    pending: PendingIdempotency | None = getattr(request.state, "idempotency", None)
                    if pending is not None:
                        await store_response(session, pending, response)
                    if getattr(request.state, "entered_workspace", False) and (
                        (await session.connection()).in_nested_transaction()
                    ):
                        await leave_workspace(session)
                    await session.commit()
                return response

        return handle_in_transaction


def domain_router(tag: str) -> APIRouter:
    """The router of one resource family: transactional routes, the errors every one may give."""
    return APIRouter(
        tags=[tag], route_class=CommitRoute, responses=problem_responses(401, 403, 422)
    )
