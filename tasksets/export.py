"""Write result rows as CSV or JSON Lines to a text stream.

A table is written header first, then in chunks of rows given column by column (``Table.write``),
so an export of a million rows never holds more than a chunk. ``write_csv`` and ``write_jsonl``
write rows given as mappings from column name to value: only `columns` are written, in that
order, and a column the row lacks is written empty (CSV) or null (JSONL). Times are written in
ISO 8601.

Every CSV is safe to open in a spreadsheet: it starts with a UTF-8 byte order mark (so Excel
reads it as UTF-8), and a text cell that a spreadsheet would run as a formula (OWASP's CSV
injection rule: it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
prefixed with a single quote. Numbers are written as numbers, so ``-2.5`` stays ``-2.5``.
JSON Lines are written as they are.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from json.encoder import encode_basestring
from typing import Any, Literal, Protocol, TextIO, cast

# One row per item: the aggregated label (a text set: the aggregated text), its confidence, how
# many answers it comes from, the gold label (or text), the item's text.
ITEM_COLUMNS = ("item_id", "label", "confidence", "answers", "gold", "text")
# One row per answer, as the worker gave it: the label, or the kind of a label-less answer (skip,
# unsure, text, voice); a typed answer's text; a voice answer's Telegram file_id, seconds and
# bytes; why "not sure"; and "wrong" when reviews found it wrong, with the right label a
# reviewer named.
RAW_COLUMNS = (
    "item_id",
    "worker",
    "label",
    "seconds",
    "answered_at",
    "text",
    "voice_file_id",
    "voice_seconds",
    "voice_bytes",
    "reason",
    "review",
    "correction",
)
BYTE_ORDER_MARK = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Rows per chunk when rows come one by one (write_csv, write_jsonl).
CHUNK_ROWS = 10_000

Format = Literal["csv", "jsonl"]
Column = Sequence[object]
Floats = Sequence[float | None]


class Table(Protocol):
    def write(self, columns: Sequence[Column]) -> int:
        """Write a chunk of rows given as one sequence per column; returns the row count."""
        ...


class CsvTable:
    """RFC 4180 CSV: lines end in "\\r\\n"; fields with commas, quotes or line breaks (a lone
    carriage return included) are quoted. Open a file for `out` with newline=""."""

    def __init__(self, columns: Sequence[str], out: TextIO) -> None:
        out.write(BYTE_ORDER_MARK)
        self._writer = csv.writer(out, lineterminator="\r\n")
        self._writer.writerow([safe_cell(column) for column in columns])

    def write(self, columns: Sequence[Column]) -> int:
        rows = list(zip(*map(safe_column, columns), strict=True))
        self._writer.writerows(rows)
        return len(rows)


class JsonlTable:
    """One JSON object per line, as ``json.dumps(row, ensure_ascii=False)`` writes it."""

    def __init__(self, columns: Sequence[str], out: TextIO) -> None:
        self._out = out
        keys = (json.dumps(column, ensure_ascii=False).replace("%", "%%") for column in columns)
        # Each value is encoded once per column, then put in its row's line by this template.
        self._line = "{" + ", ".join(f"{key}: %s" for key in keys) + "}\n"

    def write(self, columns: Sequence[Column]) -> int:
        rows = list(zip(*map(json_column, columns), strict=True))
        line = self._line
        self._out.write("".join([line % row for row in rows]))
        return len(rows)


def open_table(fmt: Format, columns: Sequence[str], out: TextIO) -> Table:
    """A table of `columns` on `out` in format `fmt`, its header (if any) written."""
    return CsvTable(columns, out) if fmt == "csv" else JsonlTable(columns, out)


def write_csv(rows: Iterable[Mapping[str, object]], columns: Sequence[str], out: TextIO) -> int:
    """Write a header and one line per row; returns the number of rows written."""
    return write_rows(CsvTable(columns, out), rows, columns)


def write_jsonl(rows: Iterable[Mapping[str, object]], columns: Sequence[str], out: TextIO) -> int:
    """Write one JSON object per line; returns the number of rows written."""
    return write_rows(JsonlTable(columns, out), rows, columns)


def write_rows(table: Table, rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> int:
    count = 0
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, CHUNK_ROWS)):
        count += table.write([[row.get(column) for row in chunk] for column in columns])
    return count


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text, never runs: a quote before a formula's start.

    None stays empty and numbers stay numbers; dates (and datetimes) are written in ISO 8601.
    """
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_column(cells: Column) -> Column:
    """``safe_cell`` of each cell, with a pass in C instead when nothing would change."""
    if not any(map(isinstance, cells, itertools.repeat((str, date)))):
        return cells  # numbers and empty cells
    try:
        text = cast(Sequence[str], cells)
        if not any(map(str.startswith, text, itertools.repeat(FORMULA_STARTS))):
            return cells
    except TypeError:  # text mixed with other values
        pass
    return list(map(safe_cell, cells))


def _json_value(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_value)


def json_column(cells: Column) -> list[str]:
    """Each cell as JSON text, as ``json.dumps(..., ensure_ascii=False)`` writes it."""
    kinds = set(map(type, cells))
    values = kinds - {type(None)}
    encode: Callable[[Any], str] = _ENCODER.encode
    if values <= {str}:
        encode = encode_basestring
    elif values <= {int}:
        encode = int.__repr__
    elif values <= {float} and all(map(math.isfinite, filter(None, cast(Floats, cells)))):
        encode = float.__repr__
    if len(values) < len(kinds):  # some cells empty
        return ["null" if cell is None else encode(cell) for cell in cells]
    return list(map(encode, cells))
