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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from tasksets.aggregation import Answers, Method, aggregate
from tasksets.export import write_csv

# Accepted header names per column, the usual name first.
_ITEM_NAMES = ("item", "task")
_ANSWER_HEADER = (_ITEM_NAMES, ("worker",), ("label",))
_GOLD_HEADER = (_ITEM_NAMES, ("truth", "label", "gold"))


@dataclass(frozen=True, slots=True)
class CodedAnswers:
    """Answers coded as indexes, with the names the indexes stand for."""

    answers: Answers
    items: tuple[str, ...]
    workers: tuple[str, ...]
    labels: tuple[str, ...]


def read_answers(stream: TextIO) -> CodedAnswers:
    """Read ``item,worker,label`` rows; a bad row raises ValueError naming its line."""
    item_index: dict[str, int] = {}
    worker_index: dict[str, int] = {}
    seen_pairs: set[tuple[int, int]] = set()
    items: list[int] = []
    workers: list[int] = []
    label_texts: list[str] = []
    for _, (item, worker, label) in _rows(stream, _ANSWER_HEADER):
        item_code = item_index.setdefault(item, len(item_index))
        worker_code = worker_index.setdefault(worker, len(worker_index))
        if (item_code, worker_code) in seen_pairs:
            continue
        seen_pairs.add((item_code, worker_code))
        items.append(item_code)
        workers.append(worker_code)
        label_texts.append(label)

    label_names = _sorted_labels(set(label_texts))
    label_index = {name: code for code, name in enumerate(label_names)}
    answers = Answers(
        items=np.array(items, dtype=np.int64),
        workers=np.array(workers, dtype=np.int64),
        labels=np.array([label_index[text] for text in label_texts], dtype=np.int64),
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
    gold = np.full(len(coded.items), -1, dtype=np.int64)
    for line, (item, truth) in _rows(stream, _GOLD_HEADER):
        if item not in item_index:
            continue
        if truth not in label_index:
            raise ValueError(f"line {line}: gold label {truth!r} is not among the answer labels")
        code = item_index[item]
        if gold[code] not in (-1, label_index[truth]):
            raise ValueError(f"line {line}: item {item!r} already has a different gold label")
        gold[code] = label_index[truth]
    return gold


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
    write_csv(
        (
            {"item": item, "label": coded.labels[label], "confidence": f"{confidence:.4f}"}
            for item, label, confidence in zip(
                coded.items, result.labels.tolist(), result.confidence.tolist(), strict=True
            )
        ),
        ("item", "label", "confidence"),
        out_stream,
    )
    if gold is None:
        return None
    known = gold >= 0
    return float(np.mean(result.labels[known] == gold[known]))


def _rows(stream: TextIO, header: tuple[tuple[str, ...], ...]) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, stripped fields) per data row, skipping blanks and the header."""
    reader = csv.reader(stream)
    first_row = True
    for row in reader:
        fields = [field.strip() for field in row]
        if not any(fields):
            continue
        line = reader.line_num
        if len(fields) != len(header):
            expected = ",".join(names[0] for names in header)
            raise ValueError(
                f"line {line}: expected {len(header)} fields {expected}, got {len(fields)}"
            )
        is_header = first_row and all(
            field.lower() in names for field, names in zip(fields, header, strict=True)
        )
        first_row = False
        if is_header:
            continue
        if not all(fields):
            raise ValueError(f"line {line}: empty field")
        yield line, fields


def _sorted_labels(labels: set[str]) -> tuple[str, ...]:
    """Numeric order when every label is an integer (so "10" follows "9"), else text order."""
    try:
        return tuple(sorted(labels, key=lambda label: (int(label), label)))
    except ValueError:
        return tuple(sorted(labels))
