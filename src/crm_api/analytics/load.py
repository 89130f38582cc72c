"""Data out of PostgreSQL into Polars, on the session's own connection (so it reads exactly
what the transaction sees); never row by row through the ORM.

- `query_frame`: any columns, streamed by `COPY (query) TO STDOUT` as CSV and parsed by
  Polars' multi-threaded reader.
- `fixed_width_frame`: the big one (orders), columns of fixed width and never null, by binary
  COPY: every row is the same record of big-endian fields, read by numpy in one pass with no
  text formatting on the server or parsing here."""

from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import driver_connection

# Timestamps leave as microseconds since the epoch (analytics/repository.epoch_us): no text
# format or session time zone to agree on.
TIMESTAMP = pl.Datetime("us", "UTC")
# A uuid as the 128-bit number it is: Polars groups and joins these about twice as fast as
# its text; uuid.UUID(int=...) turns one back.
UUID_KEY = pl.UInt128()

BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
POSTGRES_EPOCH_US = 946_684_800_000_000  # binary timestamps count from 2000-01-01
# How each type fixed_width_frame reads arrives: its fields (a uuid as two halves).
WIRE_FIELDS: dict[pl.DataType, list[tuple[str, str]]] = {
    UUID_KEY: [("high", ">u8"), ("low", ">u8")],
    TIMESTAMP: [("", ">i8")],
    pl.Float64(): [("", ">f8")],
    pl.Int64(): [("", ">i8")],
}


async def _copy_out(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], **copy: Any
) -> bytearray:
    connection = await session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    arguments = [compiled.params[name] for name in compiled.positiontup or ()]
    driver = await driver_connection(connection)
    received = bytearray()

    async def collect(chunk: bytes) -> None:
        received.extend(chunk)

    await driver.copy_from_query(str(compiled), *arguments, output=collect, **copy)
    return received


async def query_frame(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """The statement's rows, with the columns named and typed by `schema` (in its order;
    timestamps given as TIMESTAMP arrive as microseconds and are cast)."""
    data = await _copy_out(session, statement, format="csv", header=True)
    read_as = {name: pl.Int64 if kind == TIMESTAMP else kind for name, kind in schema.items()}
    frame = pl.read_csv(bytes(data), schema=read_as)
    stamps = [name for name, kind in schema.items() if kind == TIMESTAMP]
    return frame.with_columns(pl.col(name).cast(TIMESTAMP) for name in stamps)


async def fixed_width_frame(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """The statement's rows as `schema` types them: each column one of WIRE_FIELDS' types
    (uuid as UUID_KEY, timestamptz as TIMESTAMP, double precision, bigint), none null."""
    return parse_binary_copy(await _copy_out(session, statement, format="binary"), schema)


def parse_binary_copy(data: bytes | bytearray, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A binary COPY's rows: a 19-byte header and its extension, then per row a field count
    and, per field, its length and bytes; a trailer of -1."""
    if not data.startswith(BINARY_SIGNATURE) or data[-2:] != b"\xff\xff":
        raise ValueError("not the output of a binary COPY")
    extension = int.from_bytes(data[15:19], "big")
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    for name, kind in schema.items():
        parts = WIRE_FIELDS[kind]
        fields.append((f"{name} length", ">i4"))
        fields.extend((f"{name} {part}".strip(), wire) for part, wire in parts)
    record = np.dtype(fields)
    body = memoryview(data)[19 + extension : len(data) - 2]
    if len(body) % record.itemsize:
        raise ValueError("a row with a null or a value of another width")
    rows = np.frombuffer(body, record)
    if (rows["fields"] != len(schema)).any():
        raise ValueError("rows of another number of columns")
    columns: list[pl.Series] = []
    for name, kind in schema.items():
        width = sum(np.dtype(wire).itemsize for _, wire in WIRE_FIELDS[kind])
        if (rows[f"{name} length"] != width).any():
            raise ValueError(f"{name}: a null or a value of another width")
        if kind == UUID_KEY:
            high = pl.Series(rows[f"{name} high"].astype(np.uint64)).cast(UUID_KEY)
            low = pl.Series(rows[f"{name} low"].astype(np.uint64)).cast(UUID_KEY)
            columns.append((high * pl.Series([2**64], dtype=UUID_KEY) + low).alias(name))
        elif kind == TIMESTAMP:
            micros = rows[name].astype(np.int64) + POSTGRES_EPOCH_US
            columns.append(pl.Series(name, micros).cast(TIMESTAMP))
        else:
            columns.append(pl.Series(name, rows[name].astype(rows[name].dtype.newbyteorder("="))))
    return pl.DataFrame(columns)
