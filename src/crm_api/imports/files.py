"""Reading an uploaded file: a header and then (line, cells) rows, a chunk at a time, without
holding the file in memory. Pure: no database, no HTTP."""

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

CHUNK_ROWS = 1000
# Large enough for any real cell; a broken quote otherwise swallows the rest of the file.
csv.field_size_limit(1024 * 1024)


class FileProblem(ValueError):
    """The file as a whole cannot be read (not one row: those are row errors)."""


@dataclass
class ParsedRow:
    line: int
    # CSV: {column: text}; NDJSON: the line's object. None when the row itself is unreadable.
    cells: dict[str, Any] | None
    problem: str | None = None


@dataclass
class ReadFile:
    columns: list[str]
    rows: Iterator[ParsedRow]
    seen_columns: set[str] = field(default_factory=set)


def _text(binary: IO[bytes]) -> IO[str]:
    # utf-8-sig drops the byte-order mark spreadsheets write; invalid bytes are a FileProblem.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")


def read_csv(binary: IO[bytes], delimiter: str | None = None) -> ReadFile:
    text = _text(binary)
    try:
        sample = text.read(64 * 1024)
    except UnicodeDecodeError as error:
        raise FileProblem("The file is not UTF-8 text.") from error
    if not sample.strip():
        raise FileProblem("The file is empty.")
    if delimiter is None:
        first_line = sample.splitlines()[0]
        delimiter = max(",;\t|", key=first_line.count)
    stream = _Rejoined(sample, text)
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise FileProblem(f"The header line cannot be read: {error}.") from error
    columns = [name.strip() for name in header]
    if any(not name for name in columns):
        raise FileProblem("Every column of the header line needs a name.")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise FileProblem(f"Columns named more than once: {', '.join(repeated)}.")

    def rows() -> Iterator[ParsedRow]:
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield ParsedRow(line, None, f"Cannot be read as CSV: {error}.")
                line = reader.line_num + 1
                continue
            except UnicodeDecodeError as error:
                raise FileProblem(f"Line {line} is not UTF-8 text.") from error
            if cells and any(cell.strip() for cell in cells):
                if len(cells) != len(columns):
                    problem = f"Has {len(cells)} cells; the header has {len(columns)} columns."
                    yield ParsedRow(line, None, problem)
                else:
                    yield ParsedRow(line, dict(zip(columns, cells, strict=True)))
            line = reader.line_num + 1

    return ReadFile(columns, rows())


def read_ndjson(binary: IO[bytes]) -> ReadFile:
    """One JSON object per line; its keys are the columns (a nested object is one column)."""
    parsed = ReadFile([], iter(()))

    def rows() -> Iterator[ParsedRow]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        for number, raw in enumerate(binary, start=1):
            try:
                line = decoder.decode(raw)
            except UnicodeDecodeError as error:
                raise FileProblem(f"Line {number} is not UTF-8 text.") from error
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as error:
                yield ParsedRow(number, None, f"Not valid JSON: {error}.")
                continue
            if not isinstance(value, dict):
                yield ParsedRow(number, None, "Each line must be a JSON object.")
                continue
            parsed.seen_columns.update(value)
            yield ParsedRow(number, value)

    parsed.rows = rows()
    return parsed


def chunks(rows: Iterator[ParsedRow], size: int = CHUNK_ROWS) -> Iterator[list[ParsedRow]]:
    chunk: list[ParsedRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Rejoined:
    """The sample already read for sniffing, then the rest of the stream, line by line."""

    def __init__(self, sample: str, rest: IO[str]) -> None:
        self._head = io.StringIO(sample)
        self._rest = rest

    def readline(self) -> str:
        line = self._head.readline()
        if line and not line.endswith(("\n", "\r")):
            line += self._rest.readline()
        return line or self._rest.readline()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
