"""Import contacts and orders through the import path, and COPY the same rows raw.

    .venv/bin/python bench/import_load.py \
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench \
        --rows 1000000 [--resources contacts,orders]

The database must be migrated (`crm-api migrate`). For each resource it writes a CSV of N rows,
imports it the way `crm-api import` does (upload: parse and store the chunks; apply: every row
matched, validated, written with its event, in chunks of 1,000, one transaction each), then
loads the same rows with `COPY ... FROM STDIN (FORMAT csv)` into the same table of another
workspace (the trigger-kept search text and every index included, no events, no checks). It
prints rows/s for each, the ratio, and the peak memory of this process in each phase."""

import argparse
import asyncio
import csv
import io
import json
import random
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from crm_api.contacts.models import unknown_consent
from crm_api.core.auth import principal_of_secret
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.embedded import to_asyncpg_url
from crm_api.demo import FIRST_NAMES, LAST_NAMES
from crm_api.imports.schemas import ImportResource
from crm_api.imports.service import create_import, get_import, run_import_step
from crm_api.settings import Settings
from crm_api.workspaces.service import create_workspace

STAGES = ["subscriber", "lead", "qualified", "customer", "churned"]
UNKNOWN_CONSENT = json.dumps(unknown_consent())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def contact_rows(n: int) -> tuple[list[str], Callable[[int], list[str]]]:
    header = ["external_id", "first_name", "last_name", "email", "phone", "lifecycle_stage"]

    def row(i: int) -> list[str]:
        rng = random.Random(i)
        return [
            f"C-{i:08d}",
            rng.choice(FIRST_NAMES),
            rng.choice(LAST_NAMES),
            f"user{i}@example.org",
            f"+1415{i % 10_000_000:07d}",
            rng.choice(STAGES),
        ]

    return header, row


def order_rows(n: int, contacts: int) -> tuple[list[str], Callable[[int], list[str]]]:
    header = ["external_id", "order_number", "contact_external_id", "status", "ordered_at"]
    header += ["currency", "total"]

    def row(i: int) -> list[str]:
        rng = random.Random(-i)
        day = 1 + i % 28
        return [
            f"O-{i:08d}",
            f"SO-{i:08d}",
            f"C-{rng.randrange(contacts):08d}",
            rng.choice(["paid", "paid", "paid", "pending", "refunded"]),
            f"2026-{1 + i % 11:02d}-{day:02d}T10:00:00Z",
            "EUR",
            f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
        ]

    return header, row


def write_csv(path: Path, header: list[str], row: Callable[[int], list[str]], n: int) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for i in range(n):
            writer.writerow(row(i))


@dataclass
class Figures:
    resource: str
    rows: int
    upload_s: float
    apply_s: float
    import_peak_mib: float
    copy_s: float
    copy_peak_mib: float

    @property
    def import_rate(self) -> float:
        return self.rows / (self.upload_s + self.apply_s)

    @property
    def copy_rate(self) -> float:
        return self.rows / self.copy_s


async def import_file(
    settings: Settings, database_url: str, key: str, kind: ImportResource, path: Path, rows: int
) -> tuple[float, float]:
    engine = create_engine(database_url, settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker.begin() as session:
            principal = await principal_of_secret(session, key)
            assert principal is not None
        started = time.perf_counter()
        async with sessionmaker.begin() as session:
            with path.open("rb") as file:
                record = await create_import(
                    session, principal, resource=kind, file=file, filename=path.name
                )
        uploaded = time.perf_counter()
        more, last_report = True, uploaded
        while more:
            async with sessionmaker.begin() as session:
                more = await run_import_step(session, principal.workspace_id, record.id)
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                async with sessionmaker.begin() as session:
                    done = (await get_import(session, principal, record.id)).rows_processed
                rate = done / (last_report - uploaded)
                print(f"  {kind}: {done:,}/{rows:,} rows applied, {rate:,.0f}/s", flush=True)
        applied = time.perf_counter()
        async with sessionmaker.begin() as session:
            record = await get_import(session, principal, record.id)
        counts = (record.created_count, record.updated_count, record.failed_count)
        assert record.failed_count == 0, counts
        print(f"  {kind}: {record.status}, created/updated/failed {counts}", flush=True)
        return uploaded - started, applied - uploaded
    finally:
        await engine.dispose()


async def copy_raw(
    database_url: str,
    workspace_id: uuid.UUID,
    table: str,
    columns: list[str],
    header: list[str],
    row: Callable[[int], list[str]],
    n: int,
    contact_ids: list[uuid.UUID] | None,
) -> float:
    """COPY the same rows into the table (ids made here, references as ids), streamed."""
    url = make_url(to_asyncpg_url(database_url))
    connection = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port,
        database=url.database,
    )  # fmt: skip

    async def source() -> object:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for i in range(n):
            values = dict(zip(header, row(i), strict=True))
            cells = [str(workspace_id), str(uuid.uuid4())]
            for column in columns[2:]:
                if column == "consent":
                    cells.append(UNKNOWN_CONSENT)
                elif column == "contact_id" and contact_ids is not None:
                    cells.append(str(contact_ids[int(values["contact_external_id"][2:])]))
                else:
                    cells.append(values[column])
            writer.writerow(cells)
            if i % 5000 == 4999:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    try:
        started = time.perf_counter()
        await connection.copy_to_table(table, source=source(), columns=columns, format="csv")
        return time.perf_counter() - started
    finally:
        await connection.close()


async def contact_ids_of(database_url: str, workspace_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    url = make_url(to_asyncpg_url(database_url))
    connection = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port,
        database=url.database,
    )  # fmt: skip
    try:
        rows = await connection.fetch(
            "SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY external_id", workspace_id
        )
        return [row["id"] for row in rows][:n]
    finally:
        await connection.close()


async def new_workspace(settings: Settings, database_url: str, name: str) -> tuple[uuid.UUID, str]:
    engine = create_engine(database_url, settings)
    try:
        async with create_sessionmaker(engine).begin() as session:
            workspace, _, key = await create_workspace(session, name, default_country="US")
            return workspace.id, key
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resources", default="contacts,orders")
    arguments = parser.parse_args()
    settings = Settings(database_url=arguments.database_url)
    database_url = to_asyncpg_url(arguments.database_url)
    n = arguments.rows
    kinds = arguments.resources.split(",")
    figures: list[Figures] = []
    _, imported_key = await new_workspace(settings, database_url, "Bench import")
    copied_ws, _ = await new_workspace(settings, database_url, "Bench COPY")
    with tempfile.TemporaryDirectory() as folder:
        plans = []
        for kind in kinds:
            if kind == "contacts":
                header, row = contact_rows(n)
                columns = ["workspace_id", "id", "external_id", "first_name", "last_name"]
                columns += ["email", "phone", "lifecycle_stage", "consent"]
            else:
                header, row = order_rows(n, n)
                columns = ["workspace_id", "id", "external_id", "order_number", "contact_id"]
                columns += ["status", "ordered_at", "currency", "total"]
            path = Path(folder) / f"{kind}.csv"
            write_csv(path, header, row, n)
            size = path.stat().st_size / 1024 / 1024
            print(f"{kind}: {n:,} rows, {size:,.0f} MiB of CSV", flush=True)
            plans.append((kind, header, row, columns, path))
        # Every import first, so the peak memory after each is the import path's own.
        timings = {}
        for kind, _, _, _, path in plans:
            upload_s, apply_s = await import_file(
                settings, database_url, imported_key, ImportResource(kind), path, n
            )
            timings[kind] = (upload_s, apply_s, peak_rss_mib())
            print(f"  peak memory after the {kind} import: {timings[kind][2]:,.0f} MiB")
        for kind, header, row, columns, _ in plans:
            ids = await contact_ids_of(database_url, copied_ws, n) if kind == "orders" else None
            copy_s = await copy_raw(database_url, copied_ws, kind, columns, header, row, n, ids)
            figures.append(Figures(kind, n, *timings[kind], copy_s, peak_rss_mib()))
    print()
    print(
        "| resource | rows | upload s | apply s | import rows/s | COPY s | COPY rows/s | ratio "
        "| peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for f in figures:
        print(
            f"| {f.resource} | {f.rows:,} | {f.upload_s:,.1f} | {f.apply_s:,.1f} | "
            f"{f.import_rate:,.0f} | {f.copy_s:,.1f} | {f.copy_rate:,.0f} | "
            f"{f.copy_rate / f.import_rate:,.1f}x | {f.import_peak_mib:,.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
