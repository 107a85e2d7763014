"""Exported results open correctly in spreadsheets and JSON tools, whatever the item text holds."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tasksets.export import (
    ITEM_COLUMNS,
    RAW_COLUMNS,
    open_table,
    safe_cell,
    write_csv,
    write_jsonl,
)

BOM = "\ufeff"  # spreadsheet apps read a CSV that starts with it as UTF-8

TRICKY_TEXT = 'She said "fine, whatever"\nand left, slamming the door; 😤'


def item_row(**fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "item_id": "t1",
        "label": "negative",
        "confidence": 0.75,
        "answers": 4,
        "gold": None,
        "text": TRICKY_TEXT,
    }
    return row | fields


def test_csv_quotes_commas_quotes_and_newlines_so_a_reader_gets_the_text_back() -> None:
    out = io.StringIO()

    written = write_csv([item_row(), item_row(item_id="t2", text="plain")], ITEM_COLUMNS, out)

    assert written == 2
    header, first, second = csv.reader(io.StringIO(out.getvalue().removeprefix(BOM), newline=""))
    assert tuple(header) == ITEM_COLUMNS
    assert first == ["t1", "negative", "0.75", "4", "", TRICKY_TEXT]
    assert second[0] == "t2"
    assert '"She said ""fine, whatever""\nand left' in out.getvalue()


def test_csv_without_rows_still_has_its_header() -> None:
    out = io.StringIO()

    assert write_csv([], RAW_COLUMNS, out) == 0
    assert out.getvalue() == BOM + ",".join(RAW_COLUMNS) + "\r\n"


def test_csv_writes_only_the_columns_asked_for_in_their_order() -> None:
    out = io.StringIO()
    answered = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)

    write_csv(
        [{"answered_at": answered, "worker": "w7", "item_id": "t1", "label": "a", "ip": "x"}],
        RAW_COLUMNS,
        out,
    )

    assert out.getvalue().splitlines()[1] == "t1,w7,a,,2025-03-01T12:30:00+00:00,,,,,,,"


def test_jsonl_round_trips_rows_with_unicode_and_newlines() -> None:
    rows = [item_row(), item_row(item_id="t2", gold="positive", confidence=1.0, text="ok")]
    out = io.StringIO()

    written = write_jsonl(rows, ITEM_COLUMNS, out)

    lines = out.getvalue().splitlines()
    assert written == len(lines) == 2
    assert [json.loads(line) for line in lines] == rows
    assert "😤" in lines[0]  # readable text, not \ud83d escapes


def test_jsonl_writes_missing_columns_as_null_and_times_in_iso_8601() -> None:
    out = io.StringIO()
    answered = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)

    write_jsonl([{"item_id": "t1", "worker": "w7", "answered_at": answered}], RAW_COLUMNS, out)

    assert json.loads(out.getvalue()) == {
        "item_id": "t1",
        "worker": "w7",
        "label": None,
        "seconds": None,
        "answered_at": "2025-03-01T12:30:00+00:00",
        "text": None,
        "voice_file_id": None,
        "voice_seconds": None,
        "voice_bytes": None,
        "reason": None,
        "review": None,
        "correction": None,
    }


FORMULA_PAYLOADS = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
]


def test_every_formula_payload_is_written_as_text() -> None:
    out = io.StringIO()
    rows = [item_row(item_id=f"t{n}", label=p, text=p) for n, p in enumerate(FORMULA_PAYLOADS)]

    write_csv(rows, ITEM_COLUMNS, out)

    _header, *written = csv.reader(io.StringIO(out.getvalue().removeprefix(BOM), newline=""))
    for payload, row in zip(FORMULA_PAYLOADS, written, strict=True):
        assert row[1] == row[5] == "'" + payload


def test_numbers_stay_numbers_and_plain_text_is_untouched() -> None:
    assert safe_cell(-2.5) == -2.5
    assert safe_cell(-3) == -3
    assert safe_cell(None) is None
    assert safe_cell("positive") == "positive"
    assert safe_cell("a-b=c") == "a-b=c"  # only the first character matters

    out = io.StringIO()
    write_csv([item_row(confidence=-2.5, answers=-1)], ITEM_COLUMNS, out)
    assert out.getvalue().splitlines()[1].startswith("t1,negative,-2.5,-1,")


def test_jsonl_is_never_altered() -> None:
    out = io.StringIO()

    write_jsonl([item_row(label="=1+1")], ITEM_COLUMNS, out)

    assert json.loads(out.getvalue())["label"] == "=1+1"
    assert not out.getvalue().startswith(BOM)


def test_a_table_written_in_chunks_is_the_table_written_at_once() -> None:
    rows = [item_row(item_id=f"t{n}", label=FORMULA_PAYLOADS[n % 6], answers=n) for n in range(9)]
    columns = [[row[column] for row in rows] for column in ITEM_COLUMNS]
    for fmt, write in (("csv", write_csv), ("jsonl", write_jsonl)):
        at_once, chunked = io.StringIO(), io.StringIO()
        write(rows, ITEM_COLUMNS, at_once)

        table = open_table(fmt, ITEM_COLUMNS, chunked)  # type: ignore[arg-type]
        written = sum(
            table.write([cells[start : start + 4] for cells in columns]) for start in (0, 4, 8)
        )

        assert written == 9
        assert chunked.getvalue() == at_once.getvalue()


def test_jsonl_cells_are_what_json_dumps_writes_whatever_their_type() -> None:
    answered = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    columns = ("text", "number", "mixed")
    rows = [
        {"text": 'quote " and \\ and 😤\n', "number": -2.5, "mixed": None},
        {"text": "", "number": 3, "mixed": True},
        {"text": "=1+1", "number": float("nan"), "mixed": answered},
        {"text": "\u2028", "number": 10**20, "mixed": "x"},
    ]
    out = io.StringIO()

    write_jsonl(rows, columns, out)

    expected = [
        json.dumps(row, ensure_ascii=False, default=lambda value: value.isoformat()) for row in rows
    ]
    assert out.getvalue().split("\n") == [*expected, ""]


# Cells of every kind a table takes, some of them the same object, so that the columns of a
# chunk are sometimes all one value.
CELLS = st.one_of(
    st.sampled_from([None, "", "plain", "=1+1", "-7", 'a "quoted", text', "\r\n", 3, -2.5]),
    st.text(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.datetimes(timezones=st.just(UTC)),
)
COLUMN = st.one_of(
    st.lists(CELLS, min_size=12, max_size=12),
    *(
        st.lists(cells, min_size=12, max_size=12)
        for cells in (st.text(), st.integers(), st.floats(), st.none() | st.text())
    ),
)


@given(columns=st.lists(COLUMN, min_size=1, max_size=4), chunk=st.integers(1, 12))
def test_a_table_is_what_csv_writer_and_json_dumps_write_row_by_row(
    columns: list[list[object]], chunk: int
) -> None:
    names = [f"c{index}" for index in range(len(columns))]
    rows = [dict(zip(names, cells, strict=True)) for cells in zip(*columns, strict=True)]
    expected_csv = io.StringIO()
    writer = csv.writer(expected_csv, lineterminator="\r\n")
    writer.writerow(names)
    writer.writerows([safe_cell(cell) for cell in row.values()] for row in rows)
    expected_jsonl = "".join(
        json.dumps(row, ensure_ascii=False, default=lambda value: value.isoformat()) + "\n"
        for row in rows
    )
    for fmt, expected in (("csv", BOM + expected_csv.getvalue()), ("jsonl", expected_jsonl)):
        out = io.StringIO()
        table = open_table(fmt, names, out)  # type: ignore[arg-type]

        written = sum(
            table.write([cells[start : start + chunk] for cells in columns])
            for start in range(0, 12, chunk)
        )

        assert written == 12
        assert out.getvalue() == expected


def test_a_one_column_csv_writes_an_empty_cell_as_quotes_so_the_row_is_not_blank() -> None:
    out = io.StringIO()

    write_csv([{"a": ""}, {"a": None}, {"a": "x"}], ["a"], out)

    assert out.getvalue() == BOM + 'a\r\n""\r\n""\r\nx\r\n'
