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
from tasksets.export import BYTE_ORDER_MARK, FORMULA_STARTS, safe_cell

# Accepted header names per column, the usual name first.
_ITEM_NAMES = ("item", "task")
_ANSWER_HEADER = (_ITEM_NAMES, ("worker",), ("label",))
_GOLD_HEADER = (_ITEM_NAMES, ("truth", "label", "gold"))
# Characters read per block: enough that per-block overhead vanishes, few enough that a
# block's strings stay a few MB (peak RSS on 1M answers: benchmarks/batch_tools.py).
_BLOCK_CHARS = 1 << 18
_CSV_BLOCK_ROWS = 1 << 16
# What str.strip removes in ASCII text besides line ends: absent, fields need no stripping.
_ASCII_SPACES = (" ", "\t", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


@dataclass(frozen=True, slots=True)
class CodedAnswers:
    """Answers coded as indexes, with the names the indexes stand for."""

    answers: Answers
    items: tuple[str, ...]
    workers: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Block:
    """Consecutive data rows: their line numbers and their stripped fields, column by column."""

    lines: Sequence[int]
    columns: list[list[str]]


def read_answers(stream: TextIO) -> CodedAnswers:
    """Read ``item,worker,label`` rows; a bad row raises ValueError naming its line."""
    item_index: dict[str, int] = {}
    worker_index: dict[str, int] = {}
    label_index: dict[str, int] = {}  # in order of first appearance; sorted below
    coded: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for block in _blocks(stream, _ANSWER_HEADER):
        items, workers, labels = block.columns
        coded.append(
            (_codes(items, item_index), _codes(workers, worker_index), _codes(labels, label_index))
        )
    items_coded, workers_coded, labels_coded = (
        (np.concatenate(column) for column in zip(*coded, strict=True))
        if coded
        else (np.zeros(0, dtype=np.int64),) * 3
    )
    del coded

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
    lines: list[np.ndarray] = []
    items: list[str] = []
    truths: list[str] = []
    for block in _blocks(stream, _GOLD_HEADER):
        lines.append(np.asarray(block.lines, dtype=np.int64))
        items += block.columns[0]
        truths += block.columns[1]
    item_codes = np.fromiter(map(item_index.get, items, itertools.repeat(-1)), np.int64, len(items))
    truth_codes = np.fromiter(
        map(label_index.get, truths, itertools.repeat(-1)), np.int64, len(truths)
    )
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
            raise ValueError(
                f"line {line}: gold label {truths[row]!r} is not among the answer labels"
            )
        raise ValueError(f"line {line}: item {items[row]!r} already has a different gold label")
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
    # What write_csv writes, without a dict and a call per cell for each row.
    out_stream.write(BYTE_ORDER_MARK)
    writer = csv.writer(out_stream, lineterminator="\r\n")
    writer.writerow(("item", "label", "confidence"))
    label_cells = [safe_cell(name) for name in coded.labels]
    writer.writerows(
        zip(
            _safe_cells(coded.items),
            map(label_cells.__getitem__, result.labels.tolist()),
            _safe_cells(list(map("{:.4f}".format, result.confidence.tolist()))),
            strict=True,
        )
    )
    if gold is None:
        return None
    known = gold >= 0
    return float(np.mean(result.labels[known] == gold[known]))


def _safe_cells(cells: Sequence[str]) -> Iterable[object]:
    """``safe_cell`` of each cell; one pass in C when no cell starts like a formula."""
    if any(map(str.startswith, cells, itertools.repeat(FORMULA_STARTS))):
        return map(safe_cell, cells)
    return cells


def _codes(names: list[str], index: dict[str, int]) -> np.ndarray:
    """Code of each name, numbering names not yet in ``index`` in order of first appearance."""
    try:  # most blocks bring no new worker or label: one pass then
        return np.fromiter(map(index.__getitem__, names), np.int64, len(names))
    except KeyError:
        for name in dict.fromkeys(names):  # one step per distinct name, not per row
            if name not in index:
                index[name] = len(index)
    return np.fromiter(map(index.__getitem__, names), np.int64, len(names))


def _blocks(stream: TextIO, header: tuple[tuple[str, ...], ...]) -> Iterator[_Block]:
    """The data rows of ``stream`` in blocks, skipping blanks and the header.

    Plain blocks (no quote, NUL or lone carriage return, every line holding its fields and none
    empty) are split with str methods over the whole block, without a step per row in Python;
    at the first block that is not plain, the csv module reads the rest, so quoted fields and
    the line of a bad row come out exactly as the csv module has them.
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
        block = _plain_block(plain, width, line_limit, lines_done + 1)
        if block is None:
            break
        lines_done += plain.count("\n")
        if first_row:
            first_row = False
            if _is_header([column[0] for column in block.columns], header):
                block = _Block(block.lines[1:], [column[1:] for column in block.columns])
        yield block
    if chunk and not text.endswith("\n"):
        text += stream.readline()  # the csv reader's lines must end where the file's do
    lines = itertools.chain(io.StringIO(text, newline=""), stream)
    yield from _csv_blocks(lines, header, lines_done, first_row)


def _plain_block(text: str, width: int, line_limit: int, first_line: int) -> _Block | None:
    """Rows of ``text`` (whole lines) split by str methods, or None when it is not plain."""
    if '"' in text or "\0" in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    body = text.removesuffix("\n")
    # Checked in numpy on the bytes: the separators must read ",,\n,,\n...,," (each line holds
    # its fields) and no field may outgrow the csv module's limit.
    raw = np.frombuffer(body.encode(), dtype=np.uint8)
    ends = np.flatnonzero((raw == ord(",")) | (raw == ord("\n")))
    rows = body.count("\n") + 1
    pattern = np.tile(np.array([*[ord(",")] * (width - 1), ord("\n")], np.uint8), rows)[:-1]
    if ends.size != pattern.size or not np.array_equal(raw[ends], pattern):
        return None
    lengths = np.diff(ends, prepend=-1, append=raw.size) - 1
    if lengths.max() > line_limit:
        return None
    fields = body.replace("\n", ",").split(",")
    if body.isascii() and not any(space in body for space in _ASCII_SPACES):
        if lengths.min() == 0:
            return None  # an empty field: the csv path names its line
    else:
        fields = list(map(str.strip, fields))
        if "" in fields:
            return None  # a blank row or an empty field: the csv path skips it or names its line
    return _Block(
        range(first_line, first_line + rows),
        [fields[column::width] for column in range(width)],
    )


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
            yield _Block(lines, [list(column) for column in zip(*data, strict=True)])
            lines, data = [], []
    if data:
        yield _Block(lines, [list(column) for column in zip(*data, strict=True)])


def _is_header(fields: list[str], header: tuple[tuple[str, ...], ...]) -> bool:
    return all(field.lower() in names for field, names in zip(fields, header, strict=True))


def _sorted_labels(labels: set[str]) -> tuple[str, ...]:
    """Numeric order when every label is an integer (so "10" follows "9"), else text order."""
    try:
        return tuple(sorted(labels, key=lambda label: (int(label), label)))
    except ValueError:
        return tuple(sorted(labels))
