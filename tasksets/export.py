"""Write result rows as CSV or JSON Lines to a text stream.

A row is a mapping from column name to value; only `columns` are written, in that order, and a
column the row lacks is written empty (CSV) or null (JSONL). Times are written in ISO 8601.
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


def write_csv(rows: Iterable[Mapping[str, object]], columns: Sequence[str], out: TextIO) -> int:
    """Write a header and one line per row; returns the number of rows written.

    Lines end in "\\n" whatever the platform, so `out` need not be opened with newline="".
    Fields with commas, quotes or line breaks are quoted as RFC 4180 says.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
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


def _csv_cell(value: object) -> object:
    # csv writes None as an empty field already; dates (and datetimes) need ISO 8601.
    return value.isoformat() if isinstance(value, date) else value


def _json_value(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
