"""Results out of the database: aggregated labels (or texts) per item, or every raw answer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO, TypeVar, cast

import numpy as np
from sqlalchemy import ColumnElement, String, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.driver import driver_chunks
from storage.engine import long_read
from storage.models import (
    Answer,
    AnswerKind,
    Item,
    Membership,
    MembershipStatus,
    TaskSet,
    live_answer,
)
from storage.results import LabelOption, StoredAnswer, StoredItem
from storage.reviews import StoredCorrection
from storage.store import LabelStore
from tasksets.aggregation import Answers, Method, aggregate
from tasksets.agreement import krippendorff_alpha, worker_agreement
from tasksets.export import CHUNK_ROWS, ITEM_COLUMNS, RAW_COLUMNS, Table, open_table
from tasksets.text.aggregate import TextMethod, aggregate_texts
from tasksets.text.answers import TextAnswers

ExportFormat = Literal["csv", "jsonl"]
# Answer id -> what takes the place of an answer that reviews settled wrong (None: nothing).
Corrections = Mapping[int, StoredCorrection | None]
NOT_FOUND_WRONG = object()  # an answer no review settled wrong
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
    # Answers that reviews settled wrong give way to their reviewer's correction.
    corrections = await store.reviews.corrections(taskset_id)
    if raw:
        table = open_table(fmt, RAW_COLUMNS, out)
        return await write_raw_answers(store.engine, taskset_id, corrections, table)
    async with store.sessions() as session:
        answer_type, text_method, max_wer = (
            await session.execute(
                select(TaskSet.answer, TaskSet.aggregate, TaskSet.gold_max_wer).where(
                    TaskSet.id == taskset_id
                )
            )
        ).one()
    if answer_type == "labels":
        view = await store.view(taskset_id)
        results = await label_results(store.engine, taskset_id, view.labels, method, corrections)
    else:
        results = await text_results(
            store.engine, taskset_id, cast(TextMethod, text_method), max_wer, corrections
        )
    table = open_table(fmt, ITEM_COLUMNS, out)
    return await write_item_results(store.engine, taskset_id, results, table)


async def write_raw_answers(
    engine: AsyncEngine, taskset_id: int, corrections: Corrections, table: Table
) -> int:
    """Every answer of a set as its worker gave it, oldest first: item, worker, label (or the
    answer's kind), time, typed text, voice note (file_id, seconds, bytes), the reason given
    for "not sure", and whether reviews found it wrong with the right label a reviewer named
    (the aggregated export counts that correction in its place)."""
    async with long_read(engine) as connection:
        # Item names by key, looked up here: a join makes SQLite seek an item per answer.
        names: dict[int, str] = dict(
            (
                await connection.execute(
                    select(Item.id, Item.external_id).where(Item.taskset_id == taskset_id)
                )
            ).all()
        )
        answers = driver_chunks(
            connection,
            select(
                Answer.id,
                Answer.item_id,
                Answer.worker_id,
                case((Answer.kind == AnswerKind.LABEL, Answer.label), else_=Answer.kind),
                Answer.seconds,
                utc_isoformat(Answer.created_at, engine.dialect.name),
                Answer.text,
                Answer.voice_file_id,
                Answer.voice_seconds,
                Answer.voice_bytes,
                Answer.reason,
            )
            .where(Answer.taskset_id == taskset_id, live_answer())
            .order_by(Answer.id),
            CHUNK_ROWS,
        )

        def write(rows: Sequence[Any]) -> int:
            ids, items, workers, labels, seconds, *rest = zip(*rows, strict=True)
            review = correction = [""] * len(ids)  # one value per column: written once
            if not corrections.keys().isdisjoint(ids):
                found = list(map(corrections.get, ids, itertools.repeat(NOT_FOUND_WRONG)))
                review = ["" if fix is NOT_FOUND_WRONG else "wrong" for fix in found]
                correction = [
                    fix.label if isinstance(fix, StoredCorrection) else "" for fix in found
                ]
            return table.write(
                [
                    list(map(names.__getitem__, items)),
                    workers,
                    labels,
                    list(map(round, seconds, itertools.repeat(3))),
                    *rest,
                    review,
                    correction,
                ]
            )

        return await while_reading(answers, write)


def utc_isoformat(column: Any, dialect: str) -> ColumnElement[str]:
    """``as_utc(value).isoformat()`` of a UTC timestamp column, written by the database.

    Done in SQL because per answer it is the dearest cell to make in Python, and the database
    makes it on its own thread (SQLite) or server (PostgreSQL) while Python writes the rows.
    SQLite holds the text SQLAlchemy stores, ``YYYY-MM-DD HH:MM:SS.ffffff``; like ``isoformat``,
    the result leaves out a fraction of zero.
    """
    if dialect == "sqlite":
        after_seconds = func.substr(column, 20)
        whole_second = or_(after_seconds == "", after_seconds == ".000000")
        moment = case((whole_second, func.substr(column, 1, 19)), else_=column)
        return func.replace(moment, " ", "T", type_=String).concat("+00:00")
    utc = func.timezone("UTC", column)
    fraction = case(
        (func.date_trunc("second", column) == column, ""), else_=func.to_char(utc, ".US")
    )
    return (
        func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS', type_=String).concat(fraction).concat("+00:00")
    )


@dataclass(frozen=True, slots=True)
class ItemResults:
    """Per item, in the set's order: the aggregated answer ("" for none), its confidence and how
    many answers it comes from."""

    answers: list[str]
    confidence: list[float]
    counts: list[int]


async def label_results(
    engine: AsyncEngine,
    taskset_id: int,
    labels: Sequence[LabelOption],
    method: Method,
    corrections: Corrections,
) -> ItemResults:
    label_values = [label.value for label in labels]
    coded = await read_coded_answers(engine, taskset_id, label_values, corrections)
    result = await asyncio.to_thread(aggregate, coded.answers, method, coded.gold)
    label_cells = [*label_values, ""]  # index -1: no answers, no label
    return ItemResults(
        answers=[label_cells[index] for index in result.labels.tolist()],
        confidence=[round(value, 4) for value in result.confidence.tolist()],
        counts=coded.counts.tolist(),
    )


async def text_results(
    engine: AsyncEngine,
    taskset_id: int,
    method: TextMethod,
    max_wer: float,
    corrections: Corrections,
) -> ItemResults:
    """A text set's typed answers aggregated per item (the set's ``aggregate``: vote or ROVER);
    voice answers have no text to vote with and are left to the raw export."""
    answers = await read_text_answers(engine, taskset_id, corrections)

    def aggregated() -> ItemResults:
        result = aggregate_texts(answers, method, max_wer)
        return ItemResults(
            answers=[text or "" for text in result.texts],
            confidence=[round(value, 4) for value in result.confidence.tolist()],
            counts=np.bincount(answers.items, minlength=answers.n_items).tolist(),
        )

    return await asyncio.to_thread(aggregated)


async def write_item_results(
    engine: AsyncEngine, taskset_id: int, results: ItemResults, table: Table
) -> int:
    """One row per item in the set's order: aggregated answer, confidence, answers, gold, text."""
    async with long_read(engine) as connection:
        items = driver_chunks(
            connection,
            select(Item.external_id, Item.gold_label, Item.text)
            .where(Item.taskset_id == taskset_id)
            .order_by(Item.position),
            CHUNK_ROWS,
        )
        written = 0

        def write(rows: Sequence[Any]) -> int:
            nonlocal written
            start, written = written, written + len(rows)
            names, gold, texts = zip(*rows, strict=True)
            return table.write(
                [
                    names,
                    results.answers[start:written],
                    results.confidence[start:written],
                    results.counts[start:written],
                    [value or "" for value in gold],
                    [value or "" for value in texts],
                ]
            )

        return await while_reading(items, write)


async def while_reading(
    chunks: AsyncGenerator[Sequence[RowT], None], handle: Callable[[Sequence[RowT]], int]
) -> int:
    """``handle`` each chunk (write it, code it) in a worker thread while the next one is read;
    returns the sum of what ``handle`` returned. The reading stops with the first failure: its
    cursor is closed before the connection goes back to the pool."""
    count = 0
    handling: asyncio.Future[int] | None = None
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                if handling is not None:
                    count += await handling
                handling = asyncio.ensure_future(asyncio.to_thread(handle, chunk))
        finally:
            if handling is not None:
                count += await handling
    return count


@dataclass(frozen=True, slots=True)
class CodedSet:
    """A task set's answers as arrays, with the ids the indexes stand for."""

    answers: Answers
    gold: np.ndarray  # label index per item, -1 where unknown
    worker_ids: list[int]
    counts: np.ndarray  # counted answers per item


async def read_coded_answers(
    engine: AsyncEngine, taskset_id: int, label_values: list[str], corrections: Corrections
) -> CodedSet:
    """The set's counted answers as (item, worker, label) indexes, read as integers in chunks.

    Counted: labeled answers with one of the set's labels, from workers the quality rules have
    not taken out; an answer that reviews settled wrong counts as its correction, the right
    label from the reviewer's seat, or not at all (as ``code_answers`` counts what
    ``LabelStore.answers_for_export`` gives).
    """
    label_index = {value: index for index, value in enumerate(label_values)}
    label_code = case(label_index, value=Answer.label, else_=-1)
    corrected = np.array(list(corrections), dtype=np.int64)
    # Each chunk's counted answers, coded as soon as it is read: the set's answers are never
    # held as rows, only these three arrays.
    items: list[np.ndarray] = []
    workers: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    async with long_read(engine) as connection:
        keys, gold = await item_keys(connection, taskset_id)
        position = positions_in(keys)
        excluded = await excluded_workers(connection, taskset_id)

        def code(chunk: Sequence[Sequence[int]]) -> int:
            rows = np.fromiter(itertools.chain.from_iterable(chunk), np.int64, 4 * len(chunk))
            ids, chunk_items, chunk_workers, chunk_labels = rows.reshape(-1, 4).T
            counted = ~np.isin(chunk_workers, excluded)
            for row in np.flatnonzero(np.isin(ids, corrected)).tolist():
                fix = corrections[int(ids[row])]
                counted[row] = fix is not None and fix.membership not in EXCLUDED
                if fix is not None:
                    chunk_workers[row] = fix.reviewer_id
                    chunk_labels[row] = label_index.get(fix.label, -1)
            kept = counted & (chunk_labels >= 0)
            items.append(position(chunk_items[kept]))
            workers.append(chunk_workers[kept])
            labels.append(chunk_labels[kept])
            return len(chunk)

        await while_reading(
            driver_chunks(
                connection,
                select(Answer.id, Answer.item_id, Answer.worker_id, label_code)
                .where(
                    Answer.taskset_id == taskset_id,
                    Answer.kind == AnswerKind.LABEL,
                    live_answer(),
                )
                .order_by(Answer.id),
                CHUNK_ROWS,
            ),
            code,
        )

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        whole = np.concatenate([np.empty(0, dtype=np.int64), *parts])
        parts.clear()  # one column's chunks and its whole never held with another's
        return whole

    return await asyncio.to_thread(
        lambda: coded_set(
            items=joined(items),
            workers=joined(workers),
            labels=joined(labels),
            gold=gold,
            label_values=label_values,
        )
    )


async def read_text_answers(
    engine: AsyncEngine, taskset_id: int, corrections: Corrections
) -> TextAnswers:
    """The set's typed answers, oldest first, from workers the quality rules have not taken
    out; an answer that reviews settled wrong counts as the right text its reviewer typed,
    from the reviewer's seat, or not at all; workers numbered in the order of their first
    answer."""
    async with long_read(engine) as connection:
        keys, _gold = await item_keys(connection, taskset_id)
        excluded = await excluded_workers(connection, taskset_id)
        ids: list[int] = []
        items: list[int] = []
        workers: list[int] = []
        texts: list[str] = []

        def collect(chunk: Sequence[Sequence[Any]]) -> int:
            chunk_ids, chunk_items, chunk_workers, chunk_texts = zip(*chunk, strict=True)
            ids.extend(chunk_ids)
            items.extend(chunk_items)
            workers.extend(chunk_workers)
            texts.extend(chunk_texts)
            return len(chunk)

        await while_reading(
            driver_chunks(
                connection,
                select(Answer.id, Answer.item_id, Answer.worker_id, Answer.text)
                .where(
                    Answer.taskset_id == taskset_id,
                    live_answer(),
                    Answer.kind == AnswerKind.TEXT,
                    Answer.text.is_not(None),
                )
                .order_by(Answer.id),
                CHUNK_ROWS,
            ),
            collect,
        )

    def code() -> TextAnswers:
        worker_ids = np.array(workers, dtype=np.int64)
        counted = ~np.isin(worker_ids, excluded)
        for row in np.flatnonzero(np.isin(np.array(ids, dtype=np.int64), list(corrections))):
            fix = corrections[ids[row]]
            counted[row] = fix is not None and fix.membership not in EXCLUDED
            if fix is not None:
                worker_ids[row], texts[row] = fix.reviewer_id, fix.label
        kept = np.flatnonzero(counted)
        numbers, _ids = numbered(worker_ids[kept])
        return TextAnswers(
            items=positions_in(keys)(np.array(items, dtype=np.int64)[kept]),
            workers=numbers,
            texts=[texts[row] for row in kept.tolist()],
            n_items=keys.size,
            n_workers=max(_ids.size, 1),
        )

    return await asyncio.to_thread(code)


async def item_keys(
    connection: AsyncConnection, taskset_id: int
) -> tuple[np.ndarray, list[str | None]]:
    """The keys of the set's items in the set's order, and their gold labels (or texts)."""
    rows = (
        await connection.execute(
            select(Item.id, Item.gold_label)
            .where(Item.taskset_id == taskset_id)
            .order_by(Item.position)
        )
    ).all()
    return np.array([row.id for row in rows], dtype=np.int64), [row.gold_label for row in rows]


async def excluded_workers(connection: AsyncConnection, taskset_id: int) -> list[int]:
    """The workers whose answers do not count: the quality rules took them out of the set."""
    return list(
        await connection.scalars(
            select(Membership.worker_id).where(
                Membership.taskset_id == taskset_id, Membership.status.in_(EXCLUDED)
            )
        )
    )


def positions_in(keys: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving the position in ``keys`` of each key in an array of them."""
    by_key = np.argsort(keys)
    sorted_keys = keys[by_key]
    return lambda found: by_key[np.searchsorted(sorted_keys, found)]


def numbered(workers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each answer's worker as 0, 1, ... in the order of the workers' first answers, so that the
    methods see the same arrays however the answers were read; and the ids in that order."""
    ids, first, inverse = np.unique(workers, return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    number = np.empty_like(by_first)
    number[by_first] = np.arange(by_first.size)
    return number[inverse].reshape(-1), ids[by_first]


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
    """Counted answers (item index, worker id, label index each, oldest first) as a CodedSet."""
    numbers, ids = numbered(workers)
    label_index = {value: index for index, value in enumerate(label_values)}
    return CodedSet(
        answers=Answers(
            items=items,
            workers=numbers,
            labels=labels,
            n_items=len(gold),
            n_workers=max(ids.size, 1),
            n_labels=len(label_values),
        ),
        gold=np.array([label_index.get(label or "", -1) for label in gold], dtype=np.int64),
        worker_ids=ids.tolist(),
        counts=np.bincount(items, minlength=len(gold)),
    )


@dataclass(frozen=True, slots=True)
class VoiceAnswer:
    item_id: str
    worker_id: int
    file_id: str  # the voice note's Telegram file_id


async def voice_answers(store: LabelStore, name: str) -> list[VoiceAnswer]:
    """Every voice answer of a set, oldest first (what ``labelbot export --media`` fetches)."""
    taskset_id = await store.taskset_id(name)
    if taskset_id is None:
        raise UnknownTaskSet(f"no task set named {name!r}")
    async with long_read(store.engine) as connection:
        rows = await connection.execute(
            select(Item.external_id, Answer.worker_id, Answer.voice_file_id)
            .join(Item, Item.id == Answer.item_id)
            .where(
                Answer.taskset_id == taskset_id,
                live_answer(),
                Answer.kind == AnswerKind.VOICE,
                Answer.voice_file_id.is_not(None),
            )
            .order_by(Answer.id)
        )
        return [VoiceAnswer(item, worker, file_id or "") for item, worker, file_id in rows]


@dataclass(frozen=True, slots=True)
class QualityReport:
    alpha: float  # Krippendorff's alpha over the counted answers
    agreement: dict[int, float]  # worker id -> share of their answers equal to the aggregate


async def quality_report(
    store: LabelStore, taskset_id: int, method: Method = "ds"
) -> QualityReport:
    view = await store.view(taskset_id)
    labels = [label.value for label in view.labels]
    corrections = await store.reviews.corrections(taskset_id)
    coded = await read_coded_answers(store.engine, taskset_id, labels, corrections)
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
