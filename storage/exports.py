"""Results out of the database: aggregated labels per item, or every raw answer."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO, TypeVar

import numpy as np
from sqlalchemy import ColumnElement, String, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import long_read
from storage.models import Answer, AnswerKind, Item, Membership, MembershipStatus
from storage.results import StoredAnswer, StoredItem
from storage.store import LabelStore
from tasksets.aggregation import Aggregate, Answers, Method, aggregate
from tasksets.agreement import krippendorff_alpha, worker_agreement
from tasksets.export import CHUNK_ROWS, ITEM_COLUMNS, RAW_COLUMNS, Table, open_table

ExportFormat = Literal["csv", "jsonl"]
RowT = TypeVar("RowT")
# Answers of workers the quality rules took out do not vote.
EXCLUDED = {MembershipStatus.SUSPENDED, MembershipStatus.FAILED}


class UnknownTaskSet(LookupError):
    pass


async def export_taskset(
    store: LabelStore,
    name: str,
    out: TextIO,
    *,
    fmt: ExportFormat = "csv",
    method: Method = "mv",
    raw: bool = False,
) -> int:
    """Write one row per item (aggregated) or per answer (``raw``); returns rows written.

    Rows are read and written in chunks (``CHUNK_ROWS``): a raw export holds one chunk of
    answers at a time, an aggregated one the answers as integer arrays, which the methods need.
    Each chunk is written in a worker thread while the next one is read, so the event loop (in
    the bot: every worker's taps) never waits for the formatting.
    """
    taskset_id = await store.taskset_id(name)
    if taskset_id is None:
        raise UnknownTaskSet(f"no task set named {name!r}")
    if raw:
        table = open_table(fmt, RAW_COLUMNS, out)
        return await write_raw_answers(store.engine, taskset_id, table)
    view = await store.view(taskset_id)
    label_values = [label.value for label in view.labels]
    coded = await read_coded_answers(store.engine, taskset_id, label_values)
    result = await asyncio.to_thread(aggregate, coded.answers, method, coded.gold)
    table = open_table(fmt, ITEM_COLUMNS, out)
    return await write_item_results(store.engine, taskset_id, label_values, coded, result, table)


async def write_raw_answers(engine: AsyncEngine, taskset_id: int, table: Table) -> int:
    """Every answer of a set, oldest first: item, worker, label (or skip/unsure), time."""
    async with long_read(engine) as connection:
        # Item names by key, looked up here: a join makes SQLite seek an item per answer.
        names: dict[int, str] = dict(
            (
                await connection.execute(
                    select(Item.id, Item.external_id).where(Item.taskset_id == taskset_id)
                )
            ).all()
        )
        answers = await connection.stream(
            select(
                Answer.item_id,
                Answer.worker_id,
                case((Answer.kind == AnswerKind.LABEL, Answer.label), else_=Answer.kind),
                Answer.seconds,
                utc_isoformat(Answer.created_at, engine.dialect.name),
            )
            .where(Answer.taskset_id == taskset_id)
            .order_by(Answer.id)
            .execution_options(yield_per=CHUNK_ROWS)
        )

        def write(rows: Sequence[Any]) -> int:
            items, workers, labels, seconds, times = zip(*rows, strict=True)
            return table.write(
                [
                    list(map(names.__getitem__, items)),
                    workers,
                    labels,
                    list(map(round, seconds, itertools.repeat(3))),
                    times,
                ]
            )

        return await write_while_reading(answers.partitions(), write)


def utc_isoformat(column: Any, dialect: str) -> ColumnElement[str]:
    """``as_utc(value).isoformat()`` of a UTC timestamp column, written by the database.

    Done in SQL because per answer it is the dearest cell to make in Python, and the database
    makes it on its own thread (SQLite) or server (PostgreSQL) while Python writes the rows.
    SQLite holds the text SQLAlchemy stores, ``YYYY-MM-DD HH:MM:SS.ffffff``; like ``isoformat``,
    the result leaves out a fraction of zero.
    """
    if dialect == "sqlite":
        whole_second = func.substr(column, 20).in_(["", ".000000"])
        moment = case((whole_second, func.substr(column, 1, 19)), else_=column)
        return func.replace(moment, " ", "T", type_=String).concat("+00:00")
    utc = func.timezone("UTC", column)
    fraction = case(
        (func.date_trunc("second", column) == column, ""), else_=func.to_char(utc, ".US")
    )
    return (
        func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS', type_=String).concat(fraction).concat("+00:00")
    )


async def write_item_results(
    engine: AsyncEngine,
    taskset_id: int,
    label_values: list[str],
    coded: CodedSet,
    result: Aggregate,
    table: Table,
) -> int:
    """One row per item in the set's order: aggregated label, confidence, answers, gold, text."""
    label_cells = [*label_values, ""]  # index -1: no answers, no label
    labels = [label_cells[index] for index in result.labels.tolist()]
    confidence = [round(value, 4) for value in result.confidence.tolist()]
    counts = coded.counts.tolist()
    async with long_read(engine) as connection:
        items = await connection.stream(
            select(Item.external_id, Item.gold_label, Item.text)
            .where(Item.taskset_id == taskset_id)
            .order_by(Item.position)
            .execution_options(yield_per=CHUNK_ROWS)
        )
        written = 0

        def write(rows: Sequence[Any]) -> int:
            nonlocal written
            start, written = written, written + len(rows)
            names, gold, texts = zip(*rows, strict=True)
            return table.write(
                [
                    names,
                    labels[start:written],
                    confidence[start:written],
                    counts[start:written],
                    [value or "" for value in gold],
                    [value or "" for value in texts],
                ]
            )

        return await write_while_reading(items.partitions(), write)


async def write_while_reading(
    chunks: AsyncIterator[Sequence[RowT]], write: Callable[[Sequence[RowT]], int]
) -> int:
    """``write`` each chunk in a worker thread while the next one is read; returns the rows."""
    count = 0
    writing: asyncio.Future[int] | None = None
    try:
        async for chunk in chunks:
            if writing is not None:
                count += await writing
            writing = asyncio.ensure_future(asyncio.to_thread(write, chunk))
    finally:
        if writing is not None:
            count += await writing
    return count


@dataclass(frozen=True, slots=True)
class CodedSet:
    """A task set's answers as arrays, with the ids the indexes stand for."""

    answers: Answers
    gold: np.ndarray  # label index per item, -1 where unknown
    worker_ids: list[int]
    counts: np.ndarray  # counted answers per item


async def read_coded_answers(
    engine: AsyncEngine, taskset_id: int, label_values: list[str]
) -> CodedSet:
    """The set's counted answers as (item, worker, label) indexes, read as integers in chunks.

    Counted: labeled answers with one of the set's labels, from workers the quality rules have
    not taken out (as ``code_answers`` counts them).
    """
    label_code = case(
        {value: index for index, value in enumerate(label_values)}, value=Answer.label, else_=-1
    )
    async with long_read(engine) as connection:
        items = (
            await connection.execute(
                select(Item.id, Item.gold_label)
                .where(Item.taskset_id == taskset_id)
                .order_by(Item.position)
            )
        ).all()
        excluded = list(
            await connection.scalars(
                select(Membership.worker_id).where(
                    Membership.taskset_id == taskset_id, Membership.status.in_(EXCLUDED)
                )
            )
        )
        answers = await connection.stream(
            select(Answer.item_id, Answer.worker_id, label_code)
            .where(Answer.taskset_id == taskset_id, Answer.kind == AnswerKind.LABEL)
            .order_by(Answer.id)
            .execution_options(yield_per=CHUNK_ROWS)
        )
        chunks = [
            np.fromiter(itertools.chain.from_iterable(chunk), np.int64, 3 * len(chunk))
            async for chunk in answers.partitions()
        ]

    def code() -> CodedSet:
        keys = np.array([item.id for item in items], dtype=np.int64)
        rows = np.concatenate([np.empty(0, dtype=np.int64), *chunks]).reshape(-1, 3)
        rows = rows[(rows[:, 2] >= 0) & ~np.isin(rows[:, 1], excluded)]
        by_key = np.argsort(keys)
        return coded_set(
            items=by_key[np.searchsorted(keys, rows[:, 0], sorter=by_key)],
            workers=rows[:, 1],
            labels=rows[:, 2],
            gold=[item.gold_label for item in items],
            label_values=label_values,
        )

    return await asyncio.to_thread(code)


def code_answers(
    items: list[StoredItem],
    answers: list[StoredAnswer],
    label_values: list[str],
    *,
    quality_controlled: bool = True,
) -> CodedSet:
    """Labeled answers as (item, worker, label) indexes; suspended workers left out by default."""
    item_index = {item.item_id: index for index, item in enumerate(items)}
    label_index = {value: index for index, value in enumerate(label_values)}
    counted = [
        answer
        for answer in answers
        if answer.kind == AnswerKind.LABEL
        and answer.label in label_index
        and not (quality_controlled and answer.membership in EXCLUDED)
    ]
    return coded_set(
        items=np.array([item_index[answer.item_id] for answer in counted], dtype=np.int64),
        workers=np.array([answer.worker_id for answer in counted], dtype=np.int64),
        labels=np.array([label_index[answer.label or ""] for answer in counted], dtype=np.int64),
        gold=[item.gold for item in items],
        label_values=label_values,
    )


def coded_set(
    *,
    items: np.ndarray,
    workers: np.ndarray,
    labels: np.ndarray,
    gold: list[str | None],
    label_values: list[str],
) -> CodedSet:
    """Counted answers (item index, worker id, label index each, oldest first) as a CodedSet.

    Workers are numbered in the order of their first answer, so that the methods see the same
    arrays however the answers were read.
    """
    worker_ids, first, inverse = np.unique(workers, return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    number = np.empty_like(by_first)
    number[by_first] = np.arange(by_first.size)
    label_index = {value: index for index, value in enumerate(label_values)}
    return CodedSet(
        answers=Answers(
            items=items,
            workers=number[inverse].reshape(-1),
            labels=labels,
            n_items=len(gold),
            n_workers=max(by_first.size, 1),
            n_labels=len(label_values),
        ),
        gold=np.array([label_index.get(label or "", -1) for label in gold], dtype=np.int64),
        worker_ids=worker_ids[by_first].tolist(),
        counts=np.bincount(items, minlength=len(gold)),
    )


@dataclass(frozen=True, slots=True)
class QualityReport:
    alpha: float  # Krippendorff's alpha over the counted answers
    agreement: dict[int, float]  # worker id -> share of their answers equal to the aggregate


async def quality_report(
    store: LabelStore, taskset_id: int, method: Method = "ds"
) -> QualityReport:
    view = await store.view(taskset_id)
    labels = [label.value for label in view.labels]
    coded = await read_coded_answers(store.engine, taskset_id, labels)
    return await asyncio.to_thread(measure_quality, coded, method)


def measure_quality(coded: CodedSet, method: Method) -> QualityReport:
    result = aggregate(coded.answers, method, coded.gold)
    agreement = worker_agreement(coded.answers, result.labels)
    return QualityReport(
        alpha=krippendorff_alpha(coded.answers),
        agreement={
            worker_id: float(agreement[index])
            for index, worker_id in enumerate(coded.worker_ids)
            if not np.isnan(agreement[index])
        },
    )
