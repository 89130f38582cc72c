"""`crm-api metrics report`: one self-contained HTML page of a workspace's metrics."""

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from typer.testing import CliRunner

from crm_api.analytics.schemas import ClvRunCreate
from crm_api.analytics.service import create_clv_run, run_queued_clv_runs
from crm_api.cli import app
from crm_api.core.auth import principal_of_secret
from crm_api.core.db import create_engine, create_sessionmaker, new_id, transaction
from crm_api.core.scopes import Scope
from crm_api.feedback.models import Feedback
from crm_api.settings import Settings
from crm_api.workspaces.service import create_workspace, issue_api_key
from tests.analytics.test_clv_runs import AS_OF, load_golden_orders
from tests.builders import Tenant
from tests.imports.test_cli import cli_database  # noqa: F401  (the fixture)


def _workspace_with_history(database_url: str) -> tuple[str, str]:
    """The golden orders, a few NPS answers and a finished CLV run; an admin key and a key
    without metrics:read."""

    async def run() -> tuple[str, str]:
        async with transaction(database_url, Settings()) as session:
            workspace, _, key = await create_workspace(session, "Report & Co")
        engine = create_engine(database_url, Settings())
        sessionmaker = create_sessionmaker(engine)
        try:
            ids = await load_golden_orders(sessionmaker, Tenant(workspace.id, key))
            async with sessionmaker.begin() as session:
                principal = await principal_of_secret(session, key)
                assert principal is not None
                answers = [
                    {"workspace_id": workspace.id, "id": new_id(), "kind": "nps", "score": score,
                     "contact_id": contact, "responded_at": datetime(2026, month, 10, tzinfo=UTC)}
                    for (contact, score, month) in zip(list(ids)[:60], [10, 9, 3] * 20,
                                                       [3, 4, 5, 6] * 15, strict=True)
                ]  # fmt: skip
                await session.execute(insert(Feedback), answers)
                await create_clv_run(
                    session, principal, ClvRunCreate.model_validate({"as_of": AS_OF})
                )
            async with sessionmaker.begin() as session:
                assert await run_queued_clv_runs(session, datetime.now(UTC)) == 1
            async with sessionmaker.begin() as session:
                _, other = await issue_api_key(
                    session, workspace.id, "orders", [Scope.orders_read], None
                )
        finally:
            await engine.dispose()
        return key, other

    return asyncio.run(run())


def test_the_report_draws_every_chart_into_one_page(
    cli_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    key, orders_only = _workspace_with_history(cli_database)
    out = tmp_path / "report.html"
    runner = CliRunner()
    result = runner.invoke(
        app, ["metrics", "report", "--out", str(out), "--as-of", "2026-06-25T00:00:00"],
        env={"CRM_API_KEY": key},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert "Report &amp; Co: customer metrics" in page
    # The cohort heatmap, the CLV distribution and the NPS trend; no pipeline has deals.
    assert len(re.findall("<svg", page)) == 3
    assert "No pipelines." in page
    assert "champions" in page
    assert "<script" not in page
    assert not re.search(r"(src|href)=[\"']https?:", page)  # nothing fetched

    refused = runner.invoke(app, ["metrics", "report", "--out", str(out)],
                            env={"CRM_API_KEY": orders_only})  # fmt: skip
    assert refused.exit_code == 2
    assert "metrics:read" in refused.output
    arguments = ["metrics", "report", "--out", str(out), "--as-of", "1800-01-01T00:00:00"]
    too_early = runner.invoke(app, arguments, env={"CRM_API_KEY": key})
    assert too_early.exit_code == 2
    assert "1900" in too_early.output
