"""analytics/load.py's binary COPY reader against what PostgreSQL sends: the values that trip
a hand-made reader (a uuid ending in a zero byte or with its top bit set, moments before both
epochs, extreme floats) come back exact, and a null is an error rather than a shifted row."""

import uuid
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from sqlalchemy import BigInteger, DateTime, Double, Select, Uuid, column, select, values
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.analytics.load import TIMESTAMP, UUID_KEY, fixed_width_frame, parse_binary_copy

SCHEMA: dict[str, pl.DataType] = {
    "id": UUID_KEY, "at": TIMESTAMP, "amount": pl.Float64(), "count": pl.Int64(),
}  # fmt: skip
ROWS = [
    (uuid.UUID("0190a6f2-0000-7000-8000-000000000000"),
     datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), -0.5, -(2**63)),
    (uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff"),
     datetime(2026, 12, 2, 18, 0, 0, 123_456, tzinfo=UTC), 1e300, 2**63 - 1),
    (uuid.UUID("00000000-0000-0000-0000-000000000001"),
     datetime(2000, 1, 1, tzinfo=UTC), 0.0, 0),
]  # fmt: skip


def rows_statement(rows: list[tuple[Any, ...]]) -> Select[Any]:
    table = values(
        column("id", Uuid),
        column("at", DateTime(timezone=True)),
        column("amount", Double),
        column("count", BigInteger),
        name="given",
    ).data(rows)
    return select(table.c.id, table.c.at, table.c.amount, table.c.count)


async def test_values_come_back_exact(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        frame = await fixed_width_frame(session, rows_statement(ROWS), SCHEMA)
    assert frame.schema == pl.Schema(SCHEMA)
    read = [(uuid.UUID(int=i), at, amount, count) for i, at, amount, count in frame.iter_rows()]
    assert read == ROWS


async def test_no_rows_is_an_empty_frame(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        frame = await fixed_width_frame(session, rows_statement(ROWS).where(False), SCHEMA)
    assert frame.height == 0
    assert frame.schema == pl.Schema(SCHEMA)


@pytest.mark.parametrize("null_at", range(4))
async def test_a_null_is_an_error(
    sessionmaker: async_sessionmaker[AsyncSession], null_at: int
) -> None:
    row = list(ROWS[0])
    row[null_at] = None
    async with sessionmaker() as session:
        with pytest.raises(ValueError, match="null"):
            await fixed_width_frame(session, rows_statement([ROWS[1], tuple(row)]), SCHEMA)


def test_what_is_not_a_binary_copy_is_an_error() -> None:
    with pytest.raises(ValueError, match="not the output of a binary COPY"):
        parse_binary_copy(b"id,at\n", SCHEMA)
