"""Write result rows as CSV or JSON Lines to a text stream.

A row is a mapping from column name to value; only `columns` are written, in that order, and a
column the row lacks is written empty (CSV) or null (JSONL). Times are written in ISO 8601.

Every CSV is safe to open in a spreadsheet: it starts with a UTF-8 byte order mark (so Excel
reads it as UTF-8), and a text cell that a spreadsheet would run as a formula (OWASP's CSV
injection rule: it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
prefixed with a single quote. Numbers are written as numbers, so ``-2.5`` stays ``-2.5``.
JSON Lines are written as they are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TextIO

# One row per item: the aggregated label, its confidence, how many answers, the gold label.
ITEM_COLUMNS = ("item_id", "label", "confidence", "answers", "gold", "text")
# One row per answer.
RAW_COLUMNS = ("item_id", "worker", "label", "seconds", "answered_at")
BYTE_ORDER_MARK = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(rows: Iterable[Mapping[str, object]], columns: Sequence[str], out: TextIO) -> int:
    """Write a header and one line per row; returns the number of rows written.

    Lines end in "\\r\\n" and fields with commas, quotes or line breaks (a lone carriage
    return included) are quoted, as RFC 4180 says; open a file for `out` with newline="".
    """
    out.write(BYTE_ORDER_MARK)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(column) for column in columns])
    count = 0
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in columns])
        count += 1
    return count


def write_jsonl(rows: Iterable[Mapping[str, object]], columns: Sequence[str], out: TextIO) -> int:
    """Write one JSON object per line; returns the number of rows written."""
    count = 0
    for row in rows:
        record = {column: row.get(column) for column in columns}
        out.write(json.dumps(record, ensure_ascii=False, default=_json_value) + "\n")
        count += 1
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
