"""Records as CSV or Parquet, a batch at a time: the columns are the read schema's fields.
Pure: rows (dicts as the API returns them, in JSON mode) in, bytes out."""

import csv
import io
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from crm_api.core.schemas import bare_type

# As in imports: list cells are joined by `;`, objects are JSON.
LIST_SEPARATOR = ";"


def _arrow_type(annotation: Any) -> pa.DataType:
    bare = bare_type(annotation)
    if bare is bool:
        return pa.bool_()
    if bare is int:
        return pa.int64()
    if bare is float:
        return pa.float64()
    if bare is datetime:
        return pa.timestamp("us", tz="UTC")
    if bare is date:
        return pa.date32()
    if get_origin(bare) is list and bare_type(get_args(bare)[0]) in (str, uuid.UUID):
        return pa.list_(pa.string())
    if get_origin(bare) is list and isinstance(bare_type(get_args(bare)[0]), type):
        item = bare_type(get_args(bare)[0])
        if not issubclass(item, BaseModel) and item is not dict:
            return pa.list_(pa.string())
    return pa.string()


def arrow_schema(schema: type[BaseModel]) -> pa.Schema:
    return pa.schema([(name, _arrow_type(f.annotation)) for name, f in schema.model_fields.items()])


def _is_json(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if _is_json(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_header(columns: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(columns)
    # A byte-order mark, so spreadsheets read the file as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode()


def csv_rows(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue().encode()


class _Drain:
    """A file for pyarrow to write to that hands over what was written so far; it keeps
    counting, as the Parquet footer records where each row group starts."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class ParquetStream:
    """A Parquet file written one row group per batch of rows."""

    def __init__(self, schema: type[BaseModel]) -> None:
        self.schema = arrow_schema(schema)
        self._sink = _Drain()
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")

    def _column(self, name: str, rows: Sequence[dict[str, Any]]) -> list[Any]:
        kind = self.schema.field(name).type
        values = [row.get(name) for row in rows]
        if pa.types.is_timestamp(kind):
            return [datetime.fromisoformat(v) if v is not None else None for v in values]
        if pa.types.is_date32(kind):
            return [date.fromisoformat(v) if v is not None else None for v in values]
        if pa.types.is_string(kind):
            return [
                None if v is None else v if isinstance(v, str) else _json_or_text(v) for v in values
            ]
        return values

    def write(self, rows: Sequence[dict[str, Any]]) -> bytes:
        if rows:
            columns = {name: self._column(name, rows) for name in self.schema.names}
            self._writer.write_table(pa.table(columns, schema=self.schema))
        return self._sink.drain()

    def close(self) -> bytes:
        self._writer.close()
        return self._sink.drain()


def _json_or_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if _is_json(value) else str(value)
