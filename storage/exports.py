"""Results out of the database: aggregated labels per item, or every raw answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, TextIO

import numpy as np

from storage.labeling import as_utc
from storage.models import AnswerKind, MembershipStatus
from storage.results import StoredAnswer, StoredItem
from storage.store import LabelStore
from tasksets.aggregation import Answers, Method, aggregate
from tasksets.agreement import krippendorff_alpha, worker_agreement
from tasksets.export import ITEM_COLUMNS, RAW_COLUMNS, write_csv, write_jsonl

ExportFormat = Literal["csv", "jsonl"]
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
    """Write one row per item (aggregated) or per answer (``raw``); returns rows written."""
    taskset_id = await store.taskset_id(name)
    if taskset_id is None:
        raise UnknownTaskSet(f"no task set named {name!r}")
    answers = await store.answers_for_export(taskset_id)
    write = write_csv if fmt == "csv" else write_jsonl
    if raw:
        rows = (
            {
                "item_id": answer.item_id,
                "worker": answer.worker_id,
                "label": answer.label if answer.kind == AnswerKind.LABEL else str(answer.kind),
                "seconds": round(answer.seconds, 3),
                "answered_at": as_utc(answer.created_at).isoformat(),
            }
            for answer in answers
        )
        return await asyncio.to_thread(write, rows, RAW_COLUMNS, out)

    view = await store.view(taskset_id)
    items = await store.items_for_export(taskset_id)
    label_values = [label.value for label in view.labels]
    # The maths and the writing run in a thread: in the bot, a big set would hold up every tap.
    coded = await asyncio.to_thread(code_answers, items, answers, label_values)
    result = await asyncio.to_thread(aggregate, coded.answers, method, coded.gold)
    rows = (
        {
            "item_id": item.item_id,
            "label": label_values[result.labels[index]] if result.labels[index] >= 0 else "",
            "confidence": round(float(result.confidence[index]), 4),
            "answers": int(coded.counts[index]),
            "gold": item.gold or "",
            "text": item.text or "",
        }
        for index, item in enumerate(items)
    )
    return await asyncio.to_thread(write, rows, ITEM_COLUMNS, out)


@dataclass(frozen=True, slots=True)
class CodedSet:
    """A task set's answers as arrays, with the ids the indexes stand for."""

    answers: Answers
    gold: np.ndarray  # label index per item, -1 where unknown
    worker_ids: list[int]
    counts: np.ndarray  # counted answers per item


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
    worker_index: dict[int, int] = {}
    coded = [
        (
            item_index[answer.item_id],
            worker_index.setdefault(answer.worker_id, len(worker_index)),
            label_index[answer.label],
        )
        for answer in answers
        if answer.kind == AnswerKind.LABEL
        and answer.label in label_index
        and not (quality_controlled and answer.membership in EXCLUDED)
    ]
    array = np.array(coded, dtype=np.int64).reshape(-1, 3)
    return CodedSet(
        answers=Answers(
            items=array[:, 0],
            workers=array[:, 1],
            labels=array[:, 2],
            n_items=len(items),
            n_workers=max(len(worker_index), 1),
            n_labels=len(label_values),
        ),
        gold=np.array([label_index.get(item.gold or "", -1) for item in items], dtype=np.int64),
        worker_ids=list(worker_index),
        counts=np.bincount(array[:, 0], minlength=len(items)),
    )


@dataclass(frozen=True, slots=True)
class QualityReport:
    alpha: float  # Krippendorff's alpha over the counted answers
    agreement: dict[int, float]  # worker id -> share of their answers equal to the aggregate


async def quality_report(
    store: LabelStore, taskset_id: int, method: Method = "ds"
) -> QualityReport:
    view = await store.view(taskset_id)
    items = await store.items_for_export(taskset_id)
    answers = await store.answers_for_export(taskset_id)
    labels = [label.value for label in view.labels]
    return await asyncio.to_thread(measure_quality, items, answers, labels, method)


def measure_quality(
    items: list[StoredItem], answers: list[StoredAnswer], labels: list[str], method: Method
) -> QualityReport:
    coded = code_answers(items, answers, labels)
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
