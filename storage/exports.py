"""Results out of the database: aggregated labels per item, or every raw answer."""

from __future__ import annotations

from typing import Literal, TextIO

import numpy as np
from tasksets.export import ITEM_COLUMNS, RAW_COLUMNS, write_csv, write_jsonl

from storage.models import AnswerKind, MembershipStatus
from storage.store import LabelStore, StoredAnswer, StoredItem, as_utc
from tasksets.aggregation import Aggregate, Answers, Method, aggregate

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
        return write(rows, RAW_COLUMNS, out)

    view = await store.view(taskset_id)
    items = await store.items_for_export(taskset_id)
    label_values = [label.value for label in view.labels]
    result, counts = aggregate_answers(items, answers, label_values, method)
    rows = (
        {
            "item_id": item.item_id,
            "label": label_values[result.labels[index]] if result.labels[index] >= 0 else "",
            "confidence": round(float(result.confidence[index]), 4),
            "answers": int(counts[index]),
            "gold": item.gold or "",
            "text": item.text or "",
        }
        for index, item in enumerate(items)
    )
    return write(rows, ITEM_COLUMNS, out)


def aggregate_answers(
    items: list[StoredItem], answers: list[StoredAnswer], label_values: list[str], method: Method
) -> tuple[Aggregate, np.ndarray]:
    """Code the stored answers as arrays and aggregate them; gold items are clamped.

    Returns the aggregate and the number of counted answers per item.
    """
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
        and answer.membership not in EXCLUDED
        and answer.label in label_index
    ]
    array = np.array(coded, dtype=np.int64).reshape(-1, 3)
    coded_answers = Answers(
        items=array[:, 0],
        workers=array[:, 1],
        labels=array[:, 2],
        n_items=len(items),
        n_workers=max(len(worker_index), 1),
        n_labels=len(label_values),
    )
    gold = np.array([label_index.get(item.gold or "", -1) for item in items], dtype=np.int64)
    counts = np.bincount(array[:, 0], minlength=len(items))
    return aggregate(coded_answers, method, gold), counts
