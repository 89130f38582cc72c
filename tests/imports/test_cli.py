import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from crm_api.cli import app
from crm_api.contacts.models import Contact
from crm_api.core.db import transaction
from crm_api.settings import Settings, get_settings
from crm_api.workspaces.service import create_workspace


def _workspace_key(database_url: str) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        async with transaction(database_url, Settings()) as session:
            workspace, _, secret = await create_workspace(session, "CLI", default_country="GB")
            return str(workspace.id), secret

    return asyncio.run(run())


def _contacts(database_url: str, workspace_id: str) -> int:
    async def run() -> int:
        async with transaction(database_url, Settings()) as session:
            statement = select(func.count()).where(Contact.workspace_id == workspace_id)
            return int(await session.scalar(statement) or 0)

    return asyncio.run(run())


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The commands' settings name the test database while the test runs."""
    monkeypatch.setenv("CRM_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def test_crm_api_import_applies_the_file_and_reports_rejected_rows(
    cli_database: str, tmp_path: Path
) -> None:
    database_url = cli_database
    workspace_id, key = _workspace_key(database_url)
    file = tmp_path / "people.csv"
    rows = "".join(f"p{n}@example.com,P{n},020 7946 {n:04d}\n" for n in range(1500))
    file.write_text("Mail,Name,Tel\n" + rows + "broken,X,\n")
    runner = CliRunner()
    arguments = ["import", str(file), "--type", "contacts", "--map", "Mail=email,Name=first_name"]
    result = runner.invoke(app, [*arguments, "--map", "Tel=phone"], env={"CRM_API_KEY": key})
    assert result.exit_code == 1, result.output
    assert "completed: 1500 created, 0 updated, 0 unchanged, 1 rejected" in result.output
    assert "line 1502:" in result.output
    assert _contacts(database_url, workspace_id) == 1500

    bad_key = runner.invoke(app, [*arguments, "--api-key", "crm_nope"])
    assert bad_key.exit_code == 2
    assert "unknown or revoked API key" in bad_key.output
    bad_map = runner.invoke(app, [*arguments, "--map", "Mail"], env={"CRM_API_KEY": key})
    assert bad_map.exit_code == 2
    unknown = runner.invoke(app, [*arguments[:4], "--map", "Mail=mail"], env={"CRM_API_KEY": key})
    assert unknown.exit_code == 2
    assert "body.mapping" in unknown.output
