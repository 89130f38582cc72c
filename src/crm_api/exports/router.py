from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.routing import domain_router
from crm_api.exports import service
from crm_api.exports.service import SOURCES

router = domain_router("exports")

# CSV is text (a generated client hands it over as a string); Parquet is bytes.
EXPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


def _add_export(resource: str) -> None:
    source = SOURCES[resource]
    params_type: Any = source.params
    reader = Annotated[Principal, Depends(require_scope(source.scope))]

    async def export(
        request: Request,
        session: DbSession,
        principal: reader,
        params: Annotated[params_type, Query()],
    ) -> StreamingResponse:
        plan = service.plan_export(session, principal, resource, params)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        filename = f"{resource}-{stamp}.{plan.format}"
        return StreamingResponse(
            service.stream_export(
                request.app.state.sessionmaker,
                plan,
                isolated=getattr(request.state, "entered_workspace", False),
            ),
            media_type=plan.media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    router.add_api_route(
        f"/exports/{resource}",
        export,
        methods=["GET"],
        name=f"exports_{resource}",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": f"Every {resource[:-1]} the filters select, oldest first: CSV "
                "(UTF-8 with a byte-order mark; lists joined by `;`, objects as JSON, as imports "
                "read them) or Parquet (typed columns, a row group per 2,000 rows).",
                "content": EXPORT_CONTENT,
                "headers": {
                    "Content-Disposition": {
                        "description": "attachment, with a file name",
                        "schema": {"type": "string"},
                    }
                },
            }
        },
        summary=f"Export {resource} as CSV or Parquet, streamed",
    )


for _resource in SOURCES:
    _add_export(_resource)
