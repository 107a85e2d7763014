"""Read crowd answers and gold labels from CSV, aggregate them, write one label per item.

Answers are rows ``item,worker,label``; gold rows are ``item,truth``. A header line is optional:
the first row is taken as a header when its fields are the column names (``item`` may also be
called ``task``; ``truth`` may also be ``label`` or ``gold``), case-insensitive. Blank lines are
skipped and fields are stripped of surrounding spaces.

Coding: items and workers are numbered in order of first appearance; labels are sorted (as
integers when every label is one, else as strings), so the lowest label index that wins a tie
is stable across runs and row orders.

Repeated (item, worker) pairs: the first answer is kept and later ones are dropped. That is
the bot's own rule (one answer per worker and item; a repeated tap changes nothing), so a file
exported from the bot and aggregated here gives the same result as inside the bot.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from tasksets.aggregation import Answers, Method, aggregate
from tasksets.export import BYTE_ORDER_MARK, csv_text_cells

# Accepted header names per column, the usual name first.
_ITEM_NAMES = ("item", "task")
_ANSWER_HEADER = (_ITEM_NAMES, ("worker",), ("label",))
_GOLD_HEADER = (_ITEM_NAMES, ("truth", "label", "gold"))
# Characters read per block: enough that per-block overhead vanishes, few enough that a
# block's arrays stay a few MB (peak RSS on 1M answers: benchmarks/batch_tools.py).
_BLOCK_CHARS = 1 << 18
_CSV_BLOCK_ROWS = 1 << 16
# Result rows joined per write: the output's strings stay a few MB.
_WRITE_ROWS = 1 << 16
# Bytes of a block's fixed-width table of one column (rows x longest field): past this, fields
# thousands of characters long, the column is decoded field by field rather than use the memory.
_MAX_TABLE_BYTES = 1 << 25
# What str.strip removes besides line ends: ASCII spaces, stripped in numpy, and the others.
_ASCII_SPACES = " \t\x0b\x0c\x1c\x1d\x1e\x1f"
_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[list(_ASCII_SPACES.encode())] = True
_UNICODE_SPACES = "".join(
    map(chr, (0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000))
)
# Odd multiplier of the polynomial hash that folds a field's 8-byte words into one key.
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True, slots=True)
class CodedAnswers:
    """Answers coded as indexes, with the names the indexes stand for."""

    answers: Answers
    items: tuple[str, ...]
    workers: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Column:
    """One column of a block, coded against its own distinct values: ``values[codes]``."""

    values: list[str]  # distinct, in order of first appearance in the block
    codes: np.ndarray  # int32 index into values, per row


@dataclass(frozen=True, slots=True)
class _Block:
    """Consecutive data rows: their line numbers and their stripped fields, coded by column."""

    lines: Sequence[int]
    columns: list[_Column]


def read_answers(stream: TextIO) -> CodedAnswers:
    """Read ``item,worker,label`` rows; a bad row raises ValueError naming its line."""
    indexes: tuple[dict[str, int], ...] = ({}, {}, {})  # labels: first appearance, sorted below
    coded: tuple[list[np.ndarray], ...] = ([], [], [])
    for block in _blocks(stream, _ANSWER_HEADER):
        for column, index, parts in zip(block.columns, indexes, coded, strict=True):
            parts.append(_numbered(column, index))
    items_coded, workers_coded, labels_coded = map(_joined, coded)
    del coded
    item_index, worker_index, label_index = indexes

    # Repeated (item, worker) pairs: a stable sort puts each pair's first answer first.
    pairs = items_coded * max(len(worker_index), 1) + workers_coded
    order = np.argsort(pairs, kind="stable")
    pairs = pairs[order]
    repeated = order[1:][pairs[1:] == pairs[:-1]]
    if repeated.size:
        kept = np.ones(pairs.size, dtype=bool)
        kept[repeated] = False
        items_coded, workers_coded, labels_coded = (
            items_coded[kept],
            workers_coded[kept],
            labels_coded[kept],
        )
    del pairs, order

    # Only labels of kept answers count, numbered in their sorted order.
    first_seen = tuple(label_index)
    present = np.flatnonzero(np.bincount(labels_coded, minlength=len(first_seen)))
    label_names = _sorted_labels({first_seen[code] for code in present.tolist()})
    sorted_code = np.zeros(len(first_seen), dtype=np.int64)
    sorted_code[present] = [label_names.index(first_seen[code]) for code in present.tolist()]
    answers = Answers(
        items=items_coded,
        workers=workers_coded,
        labels=sorted_code[labels_coded],
        n_items=len(item_index),
        n_workers=len(worker_index),
        n_labels=len(label_names),
    )
    return CodedAnswers(answers, tuple(item_index), tuple(worker_index), label_names)


def read_gold(stream: TextIO, coded: CodedAnswers) -> np.ndarray:
    """Gold label index per item of ``coded``, -1 where unknown.

    Gold rows for items that have no answers are ignored; a gold label no worker ever gave,
    or an item listed twice with different labels, raises ValueError naming the line.
    """
    item_index = {name: code for code, name in enumerate(coded.items)}
    label_index = {name: code for code, name in enumerate(coded.labels)}
    truth_index: dict[str, int] = {}  # the gold file's own labels, named in its errors
    lines: list[np.ndarray] = []
    item_parts: list[np.ndarray] = []
    truth_parts: list[np.ndarray] = []
    for block in _blocks(stream, _GOLD_HEADER):
        items, truths = block.columns
        lines.append(np.asarray(block.lines, dtype=np.int64))
        item_parts.append(_looked_up(items, item_index))
        truth_parts.append(_numbered(truths, truth_index))
    item_codes, truth_numbers = _joined(item_parts), _joined(truth_parts)
    truth_names = tuple(truth_index)
    label_of_truth = np.array([label_index.get(name, -1) for name in truth_names], np.int64)
    truth_codes = label_of_truth[truth_numbers]
    known = np.flatnonzero(item_codes >= 0)  # rows of items with answers, in file order
    unknown_truth = truth_codes[known] < 0
    # The first label given to each item; a later row with another label is the conflict.
    _, first = np.unique(item_codes[known], return_index=True)
    first_label = np.full(len(coded.items), -1, dtype=np.int64)
    first_label[item_codes[known][first]] = truth_codes[known][first]
    conflict = truth_codes[known] != first_label[item_codes[known]]
    bad = np.flatnonzero(unknown_truth | conflict)
    if bad.size:
        row = int(known[bad[0]])
        line = int(np.concatenate(lines)[row])
        if unknown_truth[bad[0]]:
            truth = truth_names[truth_numbers[row]]
            raise ValueError(f"line {line}: gold label {truth!r} is not among the answer labels")
        item = coded.items[item_codes[row]]
        raise ValueError(f"line {line}: item {item!r} already has a different gold label")
    return first_label


def aggregate_csv(
    answers_stream: TextIO,
    method: Method,
    out_stream: TextIO,
    gold_stream: TextIO | None = None,
) -> float | None:
    """Write ``item,label,confidence`` per item; with gold, return accuracy on gold items.

    Gold serves only to measure: it is not given to the aggregation, so the accuracy is what
    the method reaches on its own.
    """
    coded = read_answers(answers_stream)
    # Gold is read first so that a bad gold file stops the run before any output is written.
    gold = None if gold_stream is None else read_gold(gold_stream, coded)
    if gold is not None and not (gold >= 0).any():
        raise ValueError("no gold item appears in the answers")
    result = aggregate(coded.answers, method)
    # What write_csv writes, a join of rows formatted in C rather than a writer call per row.
    out_stream.write(BYTE_ORDER_MARK + "item,label,confidence\r\n")
    label_cells = csv_text_cells(coded.labels)
    rows = map(
        "{},{},{}\r\n".format,
        csv_text_cells(coded.items),
        map(label_cells.__getitem__, result.labels.tolist()),
        _confidence_cells(result.confidence),
    )
    while chunk := "".join(itertools.islice(rows, _WRITE_ROWS)):
        out_stream.write(chunk)
    if gold is None:
        return None
    known = gold >= 0
    return float(np.mean(result.labels[known] == gold[known]))


def _confidence_cells(confidence: np.ndarray) -> list[str]:
    """``f"{value:.4f}"`` of each value in [0, 1], looked up in a table of the 10,001 cells."""
    scaled = confidence * 10_000
    # The product is within 1e-12 of the exact one: only a value that close to a half could
    # round otherwise than format rounds it, and those few are formatted one by one.
    near_half = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    table = [f"{number / 10_000:.4f}" for number in range(10_001)]
    cells = list(map(table.__getitem__, np.rint(scaled).astype(np.int64).tolist()))
    for row in near_half.tolist():
        cells[row] = f"{confidence[row]:.4f}"
    return cells


def _numbered(column: _Column, index: dict[str, int]) -> np.ndarray:
    """File-wide code of each row, numbering values new to ``index`` in order of appearance."""
    # The block's values are distinct, so the new ones can be numbered in one C-level pass.
    new = itertools.filterfalse(index.__contains__, column.values)
    index.update(zip(new, itertools.count(len(index))))
    return _looked_up(column, index)


def _looked_up(column: _Column, index: dict[str, int]) -> np.ndarray:
    """Code in ``index`` of each row, -1 for a value ``index`` lacks."""
    values = column.values
    codes = np.fromiter(map(index.get, values, itertools.repeat(-1)), np.int32, len(values))
    return codes[column.codes]


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The blocks' codes as one int64 array."""
    return np.concatenate(parts, dtype=np.int64) if parts else np.zeros(0, dtype=np.int64)


def _blocks(stream: TextIO, header: tuple[tuple[str, ...], ...]) -> Iterator[_Block]:
    """The data rows of ``stream`` in blocks, skipping blanks and the header.

    Plain blocks (no quote, NUL or lone carriage return, every line holding its fields and none
    empty) are split and coded in numpy on their bytes, without a Python string per field; at
    the first block that is not plain, the csv module reads the rest, so quoted fields and the
    line of a bad row come out exactly as the csv module has them.
    """
    width = len(header)
    line_limit = csv.field_size_limit()
    lines_done = 0
    first_row = True
    tail = ""
    while True:
        chunk = stream.read(_BLOCK_CHARS)
        text = tail + chunk
        if not text:
            return
        cut = text.rfind("\n") + 1 if chunk else len(text)
        if cut == 0:  # a line longer than a block: read on
            tail = text
            continue
        plain, tail = text[:cut], text[cut:]
        if first_row:
            first_line, _, after_header = plain.partition("\n")
            if _is_plain_header(first_line, header):
                plain, lines_done, first_row = after_header, lines_done + 1, False
                if not plain:
                    continue
        block = _plain_block(plain, width, line_limit, lines_done + 1)
        if block is None:
            break
        lines_done += len(block.lines)
        first_row = False
        yield block
    rest = plain + tail
    if chunk and not rest.endswith("\n"):
        rest += stream.readline()  # the csv reader's lines must end where the file's do
    lines = itertools.chain(io.StringIO(rest, newline=""), stream)
    yield from _csv_blocks(lines, header, lines_done, first_row)


def _is_plain_header(line: str, header: tuple[tuple[str, ...], ...]) -> bool:
    """Whether ``line`` (without its newline) is the header as the csv module would read it."""
    if any(mark in line.removesuffix("\r") for mark in '"\0\r'):
        return False  # quoted or cut in two by the csv module: the csv path decides
    fields = [field.strip() for field in line.split(",")]
    return len(fields) == len(header) and _is_header(fields, header)


def _plain_block(text: str, width: int, line_limit: int, first_line: int) -> _Block | None:
    """Rows of ``text`` (whole lines) coded in numpy, or None when it is not plain."""
    if '"' in text or "\0" in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    body = text.removesuffix("\n")
    raw = np.frombuffer(body.encode(), dtype=np.uint8)
    # The separators must read ",,\n,,\n...,," (each line holds its fields) and no field may
    # outgrow the csv module's limit.
    ends = np.flatnonzero((raw == ord(",")) | (raw == ord("\n")))
    rows = body.count("\n") + 1
    pattern = np.tile(np.array([*[ord(",")] * (width - 1), ord("\n")], np.uint8), rows)[:-1]
    if ends.size != pattern.size or not np.array_equal(raw[ends], pattern):
        return None
    starts = np.concatenate(([0], ends + 1))
    stops = np.append(ends, raw.size)
    if (stops - starts).max() > line_limit:
        return None
    lines = range(first_line, first_line + rows)
    if not body.isascii() and any(space in body for space in _UNICODE_SPACES):
        # Only the str methods know every space to strip: this block is split by them.
        fields = list(map(str.strip, body.replace("\n", ",").split(",")))
        if "" in fields:
            return None
        return _Block(lines, [_column(fields[column::width]) for column in range(width)])
    if any(space in body for space in _ASCII_SPACES):
        starts, stops = _stripped(raw, starts, stops)
    if (stops == starts).any():
        return None  # a blank row or an empty field: the csv path skips it or names its line
    columns = [
        _coded_column(raw, starts[column::width], stops[column::width]) for column in range(width)
    ]
    return _Block(lines, columns)


def _stripped(raw: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, ...]:
    """Field bounds without the ASCII spaces that str.strip would remove from each end."""
    spaces = _SPACE_BYTES[raw]
    positions = np.arange(raw.size + 1)
    # Per byte, the next non-space at or after it and the last non-space before it.
    next_solid = np.where(np.append(spaces, False), raw.size, positions)
    next_solid = np.minimum.accumulate(next_solid[::-1])[::-1]
    last_solid = np.where(np.insert(spaces, 0, True), 0, positions)
    last_solid = np.maximum.accumulate(last_solid)
    starts = np.minimum(next_solid[starts], stops)
    return starts, np.maximum(last_solid[stops], starts)


def _coded_column(raw: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> _Column:
    """The fields ``raw[starts:stops]`` coded by their bytes.

    Each field becomes a row of a zero-padded table (a plain block holds no NUL, so padding
    cannot make two fields equal), its 8-byte words folded into one key by a polynomial hash;
    the keys are sorted once. Every row is then checked against its value's first row: on a
    hash collision (never seen in practice), as for a table too big, the fields are decoded
    one by one instead.
    """
    lengths = stops - starts
    width = -(-int(lengths.max()) // 8) * 8
    if width * starts.size <= _MAX_TABLE_BYTES:
        padded = np.concatenate((raw, np.zeros(width, dtype=np.uint8)))
        table = np.lib.stride_tricks.sliding_window_view(padded, width)[starts]
        table *= np.arange(width) < lengths[:, None]  # zero the bytes past each field
        words = table.view(np.uint64)
        keys = words[:, 0].copy()
        for column in range(1, words.shape[1]):
            keys *= _HASH_MULTIPLIER
            keys += words[:, column]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        if words.shape[1] == 1 or np.array_equal(words, words[first[inverse]]):
            # Values numbered in order of first appearance, as the csv path numbers them.
            appearance = np.argsort(first)
            number = np.empty(first.size, dtype=np.int32)
            number[appearance] = np.arange(first.size)
            values = table[first[appearance]].view(f"S{width}").ravel().tolist()
            return _Column(list(map(bytes.decode, values)), number[inverse])
    data = raw.tobytes()
    bounds = zip(starts.tolist(), stops.tolist(), strict=True)
    return _column([data[start:stop].decode() for start, stop in bounds])


def _column(fields: list[str]) -> _Column:
    """A column of strings coded against its distinct values."""
    index = {value: number for number, value in enumerate(dict.fromkeys(fields))}
    return _Column(list(index), np.fromiter(map(index.__getitem__, fields), np.int32, len(fields)))


def _csv_blocks(
    source: Iterable[str],
    header: tuple[tuple[str, ...], ...],
    line_offset: int,
    first_row: bool,
) -> Iterator[_Block]:
    """Data rows read by the csv module, with line numbers counted on from ``line_offset``."""
    reader = csv.reader(source)
    lines: list[int] = []
    data: list[list[str]] = []
    for row in reader:
        fields = [field.strip() for field in row]
        if not any(fields):
            continue
        line = line_offset + reader.line_num
        if len(fields) != len(header):
            expected = ",".join(names[0] for names in header)
            raise ValueError(
                f"line {line}: expected {len(header)} fields {expected}, got {len(fields)}"
            )
        is_header = first_row and _is_header(fields, header)
        first_row = False
        if is_header:
            continue
        if not all(fields):
            raise ValueError(f"line {line}: empty field")
        lines.append(line)
        data.append(fields)
        if len(data) == _CSV_BLOCK_ROWS:
            yield _Block(lines, [_column(list(column)) for column in zip(*data, strict=True)])
            lines, data = [], []
    if data:
        yield _Block(lines, [_column(list(column)) for column in zip(*data, strict=True)])


def _is_header(fields: list[str], header: tuple[tuple[str, ...], ...]) -> bool:
    return all(field.lower() in names for field, names in zip(fields, header, strict=True))


def _sorted_labels(labels: set[str]) -> tuple[str, ...]:
    """Numeric order when every label is an integer (so "10" follows "9"), else text order."""
    try:
        return tuple(sorted(labels, key=lambda label: (int(label), label)))
    except ValueError:
        return tuple(sorted(labels))
