"""Data out of PostgreSQL into Polars: a query's rows streamed by `COPY (query) TO STDOUT` as
CSV on the session's own connection (so it reads exactly what the transaction sees) and parsed
by Polars' multi-threaded reader. Never row by row through the ORM."""

from typing import Any

import polars as pl
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import driver_connection

# Timestamps leave as microseconds since the epoch (analytics/repository.epoch_us): no text
# format or session time zone to agree on.
TIMESTAMP = pl.Datetime("us", "UTC")


async def query_frame(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """The statement's rows, with the columns named and typed by `schema` (in its order;
    timestamps given as TIMESTAMP arrive as microseconds and are cast)."""
    connection = await session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    arguments = [compiled.params[name] for name in compiled.positiontup or ()]
    driver = await driver_connection(connection)
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await driver.copy_from_query(
        str(compiled), *arguments, output=collect, format="csv", header=True
    )
    read_as = {name: pl.Int64 if kind == TIMESTAMP else kind for name, kind in schema.items()}
    frame = pl.read_csv(b"".join(chunks), schema=read_as)
    stamps = [name for name, kind in schema.items() if kind == TIMESTAMP]
    return frame.with_columns(pl.col(name).cast(TIMESTAMP) for name in stamps)
