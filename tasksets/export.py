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

import itertools
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from json.encoder import encode_basestring
from typing import Any, Literal, NamedTuple, Protocol, TextIO, cast

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
# What makes csv.writer (excel dialect, "\r\n" line ends) put a cell in quotes.
NEEDS_QUOTES = (",", '"', "\r", "\n")
FIRST_CHARACTER = operator.itemgetter(slice(None, 1))
# Rows per chunk when rows come one by one (write_csv, write_jsonl).
CHUNK_ROWS = 10_000

Format = Literal["csv", "jsonl"]
Column = Sequence[object]
Floats = Sequence[float | None]


class Table(Protocol):
    def write(self, columns: Sequence[Column]) -> int:
        """Write a chunk of rows given as one sequence per column; returns the row count."""
        ...


class CellTexts(NamedTuple):
    """A chunk's column as the text of each cell; or, when ``texts`` is None, the text of every
    cell (a column of one value, such as all empty)."""

    texts: Sequence[str] | None
    every: str = ""


class CsvTable:
    """RFC 4180 CSV: lines end in "\\r\\n"; fields with commas, quotes or line breaks (a lone
    carriage return included) are quoted. Open a file for `out` with newline="".

    The lines are what ``csv.writer`` writes of ``safe_cell`` of each cell, made a column at a
    time: a column of plain text goes into the lines as it is, after two checks in C.
    """

    def __init__(self, columns: Sequence[str], out: TextIO) -> None:
        self._out = out
        # csv.writer quotes the empty cell of a one-column row, which would read as no row.
        self._empty = '""' if len(columns) == 1 else ""
        self._separators = ["", *[","] * (len(columns) - 1), "\r\n"]
        header = [CellTexts(None, csv_cell(column) or self._empty) for column in columns]
        out.write(BYTE_ORDER_MARK + lines(self._separators, header))

    def write(self, columns: Sequence[Column]) -> int:
        rows = row_count(columns)
        texts = [csv_texts(cells, self._empty) for cells in columns]
        self._out.write(lines(self._separators, texts, rows))
        return rows


class JsonlTable:
    """One JSON object per line, as ``json.dumps(row, ensure_ascii=False)`` writes it."""

    def __init__(self, columns: Sequence[str], out: TextIO) -> None:
        self._out = out
        keys = [json.dumps(column, ensure_ascii=False) for column in columns]
        # What stands before each value in a line, and the line's end.
        self._separators = [
            *(("{" if index == 0 else ", ") + key + ": " for index, key in enumerate(keys)),
            "}\n",
        ]

    def write(self, columns: Sequence[Column]) -> int:
        rows = row_count(columns)
        self._out.write(lines(self._separators, list(map(json_texts, columns)), rows))
        return rows


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


def _json_value(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_value)


def row_count(columns: Sequence[Column]) -> int:
    rows = len(columns[0]) if columns else 0
    if any(len(cells) != rows for cells in columns):
        raise ValueError("columns of different lengths")
    return rows


def lines(separators: Sequence[str], columns: Sequence[CellTexts], rows: int = 1) -> str:
    """``rows`` lines of text: ``separators[0]``, column 0's cell, ``separators[1]``, column 1's
    cell, ..., ``separators[-1]``.

    Made a column at a time in C: the cells of one value go into the text around the cells that
    vary, and each run of varying cells with the same text between them is joined in one pass.
    """
    if rows == 0:
        return ""
    fixed = separators[0]  # text since the last varying column
    before: list[str] = []  # text before each varying column
    varying: list[Sequence[str]] = []
    for column, separator in zip(columns, separators[1:], strict=True):
        if column.texts is None:
            fixed += column.every + separator
        else:
            before.append(fixed)
            varying.append(column.texts)
            fixed = separator
    if not varying:
        return fixed * rows
    start, end = before[0], fixed
    joined: Iterable[str] = varying[0]
    runs = itertools.groupby(zip(before[1:], varying[1:], strict=True), key=operator.itemgetter(0))
    for separator, run in runs:
        joined = map(separator.join, zip(joined, *(cells for _, cells in run), strict=True))
    return start + (end + start).join(joined) + end


def one_value(cells: Column) -> bool:
    """Whether every cell is the same object (all None, say): checked in C, at once for a column
    that is not."""
    if not cells or cells[0] is not cells[-1]:
        return False
    first = cells[0]
    if first is None:
        return cells.count(None) == len(cells)
    return all(map(operator.is_, cells, itertools.repeat(first)))


def csv_texts(cells: Column, empty: str = "") -> CellTexts:
    """A column as ``csv.writer`` writes ``safe_cell`` of its cells, ``empty`` for an empty cell
    (in a one-column table, csv.writer writes ``""``)."""
    if one_value(cells):
        return CellTexts(None, csv_cell(cells[0]) or empty)
    if not empty:
        try:
            return CellTexts(csv_text_cells(cast(Sequence[str], cells)))
        except TypeError:  # not all text
            if set(map(type, cells)) <= {int, float}:
                return CellTexts(list(map(str, cells)))  # what csv.writer writes of a number
    return CellTexts([csv_cell(cell) or empty for cell in cells])


def csv_text_cells(cells: Sequence[str]) -> Sequence[str]:
    """Each text as ``csv.writer`` writes ``safe_cell`` of it: the cells themselves when none
    starts like a formula or holds a comma, a quote or a line break, which two passes in C tell.
    Raises TypeError when a cell is not text."""
    starts, text = "".join(map(FIRST_CHARACTER, cells)), "".join(cells)
    if any(start in starts for start in FORMULA_STARTS) or any(c in text for c in NEEDS_QUOTES):
        return [csv_cell(cell) for cell in cells]
    return cells


def csv_cell(value: object) -> str:
    """One cell as ``csv.writer`` writes ``safe_cell(value)``."""
    if value is None:
        return ""
    value = safe_cell(value)
    # csv.writer writes text as it is and anything else as its str (a float's repr).
    text = value if isinstance(value, str) else str(value)
    if any(special in text for special in NEEDS_QUOTES):
        return '"' + text.replace('"', '""') + '"'
    return text


def json_texts(cells: Column) -> CellTexts:
    """A column as ``json.dumps(..., ensure_ascii=False)`` writes each cell."""
    if one_value(cells):
        return CellTexts(None, _ENCODER.encode(cells[0]))
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
        return CellTexts(["null" if cell is None else encode(cell) for cell in cells])
    return CellTexts(list(map(encode, cells)))
