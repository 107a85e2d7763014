"""Exports read from the database, on SQLite and PostgreSQL: the bytes the export wrote before it
streamed, rows written while the answers are still being read, spreadsheet-safe cells, and a bot
that keeps recording answers while a coordinator exports."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import re
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

import storage.exports
from storage.exports import export_taskset
from storage.labeling import as_utc
from storage.models import Answer, AnswerKind, Item, Membership, MembershipStatus
from storage.results import Recorded, ServedItem, StoredAnswer, StoredItem
from storage.store import LabelStore
from tasksets.aggregation import METHODS, aggregate
from tasksets.export import ITEM_COLUMNS, RAW_COLUMNS, safe_cell
from tasksets.spec import TaskSetSpec
from tests.conftest import Clock
from tests.factories import make_spec
from tests.test_export import FORMULA_PAYLOADS, TRICKY_TEXT
from tests.test_reviews import EVERYONE_REVIEWS, answer, review_of, review_of_item
from tests.test_store import join

LABELS = ["positive", "negative", "neutral"]
CHUNK = 4  # rows per chunk in these tests, so that a small set takes many chunks


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.exports, "CHUNK_ROWS", CHUNK)


async def seeded_set(store: LabelStore, *, seed: int = 5) -> int:
    """A set whose item ids and texts hold formula payloads, labeled by five workers at random
    (Skip and Not sure included); worker 5 is suspended afterwards. Returns the set's id."""
    texts = [*FORMULA_PAYLOADS, TRICKY_TEXT, "plain"]
    spec = TaskSetSpec.model_validate(
        {
            "name": "seeded",
            "question": "What is the sentiment?",
            "labels": LABELS,
            "overlap": 3,
            "items": [{"id": f"t{n}", "text": text} for n, text in enumerate(texts)]
            + [{"id": "=1+1", "text": "an id a spreadsheet would run"}, {"id": "-7", "text": "x"}]
            + [{"id": f"g{n}", "text": f"control {n}", "gold": LABELS[n]} for n in range(3)],
        }
    )
    taskset_id = await store.load_taskset(spec)
    # Half-second steps: answer times with and without a fraction of a second.
    assert isinstance(store.clock, Clock)
    store.clock.step = timedelta(seconds=2.5)
    rng = random.Random(seed)
    workers = [1, 2, 3, 4, 5]
    for worker_id in workers:
        await store.join(worker_id, f"Worker {worker_id}", taskset_id=taskset_id)
    current = {worker_id: await store.next_item_for(worker_id) for worker_id in workers}
    while any(isinstance(served, ServedItem) for served in current.values()):
        for worker_id, served in current.items():
            if isinstance(served, ServedItem):
                choice = rng.choice([0, 0, 1, 1, 2, "skip", "unsure"])
                outcome = await store.record_answer(served.token, worker_id, choice)
                assert isinstance(outcome, Recorded)
                current[worker_id] = outcome.next
    async with store.sessions.begin() as session:
        await session.execute(
            update(Membership)
            .where(Membership.worker_id == 5)
            .values(status=MembershipStatus.SUSPENDED)
        )
    return taskset_id


async def export(store: LabelStore, fmt: str, method: str) -> str:
    out = io.StringIO(newline="")
    await export_taskset(
        store,
        "seeded",
        out,
        fmt=fmt,  # type: ignore[arg-type]
        method="mv" if method == "raw" else method,  # type: ignore[arg-type]
        raw=method == "raw",
    )
    return out.getvalue()


# ------------------------------------------ the export as it was: every answer read into a list


async def export_before_streaming(store: LabelStore, fmt: str, method: str) -> str:
    """A label set's export as it was written from lists (the columns that text and voice
    answers added are empty for a label set)."""
    taskset_id = await store.taskset_id("seeded")
    assert taskset_id is not None
    if method == "raw":  # the answers as given, with the review's verdict beside them
        corrections = await store.reviews.corrections(taskset_id)
        async with store.sessions() as session:
            answer_ids = {
                (item, worker): answer_id
                for answer_id, item, worker in await session.execute(
                    select(Answer.id, Item.external_id, Answer.worker_id).join(
                        Item, Item.id == Answer.item_id
                    )
                )
            }
        rows = []
        for answer in await store.answers_for_export(taskset_id, reviewed=False):
            fix = corrections.get(answer_ids[answer.item_id, answer.worker_id], False)
            rows.append(
                {
                    "item_id": answer.item_id,
                    "worker": answer.worker_id,
                    "label": answer.label if answer.kind == AnswerKind.LABEL else str(answer.kind),
                    "seconds": round(answer.seconds, 3),
                    "answered_at": as_utc(answer.created_at).isoformat(),
                    "review": "" if fix is False else "wrong",
                    "correction": fix.label if fix else "",
                }
            )
        return write_before(rows, RAW_COLUMNS, fmt)
    answers = await store.answers_for_export(taskset_id)
    labels = [label.value for label in (await store.view(taskset_id)).labels]
    items = await store.items_for_export(taskset_id)
    coded, gold, counts = code_before(items, answers, labels)
    result = aggregate(coded, method, gold)  # type: ignore[arg-type]
    rows = [
        {
            "item_id": item.item_id,
            "label": labels[result.labels[index]] if result.labels[index] >= 0 else "",
            "confidence": round(float(result.confidence[index]), 4),
            "answers": int(counts[index]),
            "gold": item.gold or "",
            "text": item.text or "",
        }
        for index, item in enumerate(items)
    ]
    return write_before(rows, ITEM_COLUMNS, fmt)


def code_before(
    items: list[StoredItem], answers: list[StoredAnswer], labels: list[str]
) -> tuple[Any, np.ndarray, np.ndarray]:
    from tasksets.aggregation import Answers

    item_index = {item.item_id: index for index, item in enumerate(items)}
    label_index = {value: index for index, value in enumerate(labels)}
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
        and answer.membership not in {MembershipStatus.SUSPENDED, MembershipStatus.FAILED}
    ]
    array = np.array(coded, dtype=np.int64).reshape(-1, 3)
    answers_array = Answers(
        array[:, 0], array[:, 1], array[:, 2], len(items), max(len(worker_index), 1), len(labels)
    )
    gold = np.array([label_index.get(item.gold or "", -1) for item in items], dtype=np.int64)
    return answers_array, gold, np.bincount(array[:, 0], minlength=len(items))


def write_before(rows: list[dict[str, Any]], columns: tuple[str, ...], fmt: str) -> str:
    out = io.StringIO(newline="")
    if fmt == "csv":
        out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([safe_cell(row.get(column)) for column in columns])
    else:
        for row in rows:
            out.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
    return out.getvalue()


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("method", ["raw", *METHODS])
async def test_streamed_export_writes_the_bytes_the_list_based_export_wrote(
    store: LabelStore, fmt: str, method: str
) -> None:
    await seeded_set(store)

    streamed = await export(store, fmt, method)

    assert streamed == await export_before_streaming(store, fmt, method)
    assert streamed.count("\n") > 3 * CHUNK  # the set took several chunks
    if method == "raw":  # times with a fraction of a second and without
        assert ".500000+00:00" in streamed and re.search(r":\d\d\+00:00", streamed)


async def test_suspended_workers_do_not_vote_but_their_answers_stay_in_the_raw_export(
    store: LabelStore,
) -> None:
    await seeded_set(store)

    raw = list(csv.DictReader(io.StringIO((await export(store, "csv", "raw")).lstrip("\ufeff"))))
    items = list(csv.DictReader(io.StringIO((await export(store, "csv", "mv")).lstrip("\ufeff"))))

    workers = {row["worker"] for row in raw}
    assert "5" in workers
    counted = sum(1 for row in raw if row["worker"] != "5" and row["label"] in LABELS)
    assert sum(int(row["answers"]) for row in items) == counted
    assert {row["label"] for row in raw} <= {*LABELS, "skip", "unsure"}


async def test_every_cell_a_spreadsheet_would_run_is_quoted_and_numbers_stay_numbers(
    store: LabelStore,
) -> None:
    taskset_id = await seeded_set(store)
    # A worker who erased their data (/delete) answers as a negative stand-in id: a number.
    assert await store.privacy.erase(4) is not None

    raw = await export(store, "csv", "raw")
    items = await export(store, "csv", "mv")

    assert raw.startswith("\ufeffitem_id,worker,label,seconds,answered_at,text,voice_file_id,")
    raw_rows = list(csv.reader(io.StringIO(raw.lstrip("\ufeff"), newline="")))[1:]
    assert {"'=1+1", "'-7"} <= {row[0] for row in raw_rows}
    assert any(row[1].startswith("-") and int(row[1]) < 0 for row in raw_rows)
    item_rows = {row[0]: row for row in csv.reader(io.StringIO(items.lstrip("\ufeff"), newline=""))}
    stored = {item.item_id: item.text for item in await store.items_for_export(taskset_id)}
    formulas = [item for item, text in stored.items() if text and text[0] in "=+-@"]
    assert len(formulas) >= 4
    for item in formulas:
        assert item_rows[str(safe_cell(item))][5] == "'" + (stored[item] or "")
    assert item_rows["'=1+1"][5] == "an id a spreadsheet would run"
    jsonl = [json.loads(line) for line in (await export(store, "jsonl", "raw")).splitlines()]
    assert {"=1+1", "-7"} <= {row["item_id"] for row in jsonl}
    assert any(isinstance(row["worker"], int) and row["worker"] < 0 for row in jsonl)


def spy_on_reads(monkeypatch: pytest.MonkeyPatch, timeline: list[tuple[str, int]]) -> None:
    """Log ("read", rows) each time the database hands the export a chunk of rows."""
    driver_chunks = storage.exports.driver_chunks

    async def logged(*args: Any) -> AsyncGenerator[Any, None]:
        async for chunk in driver_chunks(*args):
            timeline.append(("read", len(chunk)))
            yield chunk

    monkeypatch.setattr(storage.exports, "driver_chunks", logged)


class LoggedOutput(io.StringIO):
    """An output that logs ("written", data lines) per write and calls ``on_write`` once."""

    def __init__(self, timeline: list[tuple[str, int]], on_write: Callable[[], None]) -> None:
        super().__init__(newline="")
        self.timeline = timeline
        self.on_write: Callable[[], None] | None = on_write

    def write(self, text: str) -> int:
        self.timeline.append(("written", text.count("\n")))
        if self.on_write is not None:
            on_write, self.on_write = self.on_write, None
            on_write()
        return super().write(text)


def first_data_write(timeline: list[tuple[str, int]], header: int) -> int:
    written = 0
    for index, (kind, lines) in enumerate(timeline):
        written += lines if kind == "written" else 0
        if written > header:
            return index
    raise AssertionError("no row written")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_answers_are_written_while_later_answers_are_still_being_read(
    store: LabelStore, monkeypatch: pytest.MonkeyPatch, fmt: Any
) -> None:
    await seeded_set(store)
    timeline: list[tuple[str, int]] = []
    spy_on_reads(monkeypatch, timeline)
    out = LoggedOutput(timeline, on_write=lambda: None)

    written = await export_taskset(store, "seeded", out, fmt=fmt, raw=True)

    header = 1 if fmt == "csv" else 0
    assert written == out.getvalue().count("\n") - header > 3 * CHUNK
    last_read = max(index for index, (kind, _) in enumerate(timeline) if kind == "read")
    assert first_data_write(timeline, header) < last_read
    # Never more than two chunks of answers held: the one being written and the one just read.
    rows_read = lines_written = 0
    for kind, rows in timeline:
        if kind == "read":
            rows_read += rows
        else:
            lines_written += rows
        assert rows_read - max(lines_written - header, 0) <= 2 * CHUNK


async def test_item_results_are_written_while_later_items_are_still_being_read(
    store: LabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seeded_set(store)
    timeline: list[tuple[str, int]] = []
    spy_on_reads(monkeypatch, timeline)
    out = LoggedOutput(timeline, on_write=lambda: None)

    written = await export_taskset(store, "seeded", out, fmt="jsonl", method="ds")

    assert written == out.getvalue().count("\n") > 2 * CHUNK
    last_read = max(index for index, (kind, _) in enumerate(timeline) if kind == "read")
    assert first_data_write(timeline, 0) < last_read


class FullDisk(io.StringIO):
    """An output that takes the header, then fails as a full disk does."""

    def write(self, text: str) -> int:
        if self.tell() > 0:
            raise OSError(28, "No space left on device")
        return super().write(text)


@pytest.mark.parametrize("method", ["raw", "mv"])
async def test_an_export_that_fails_midway_leaves_the_next_one_whole(
    store: LabelStore, method: str
) -> None:
    await seeded_set(store)

    with pytest.raises(OSError, match="No space left"):
        await export_taskset(store, "seeded", FullDisk(), raw=method == "raw")

    assert await export(store, "csv", method) == await export_before_streaming(store, "csv", method)


async def test_the_bot_records_answers_while_a_set_is_being_exported(
    store: LabelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seeded_set(store)
    await store.load_taskset(
        TaskSetSpec.model_validate(
            {"name": "other", "labels": LABELS, "items": [{"id": "o1", "text": "x"}]}
        )
    )
    other = await store.taskset_id("other")
    await store.join(9, "Worker 9", taskset_id=other)
    served = await store.next_item_for(9)
    assert isinstance(served, ServedItem)
    loop = asyncio.get_running_loop()
    outcomes: list[object] = []

    def tap_meanwhile() -> None:
        # Runs in the export's writing thread, halfway through the export.
        tap = asyncio.run_coroutine_threadsafe(store.record_answer(served.token, 9, 0), loop)
        outcomes.append(tap.result(timeout=10))

    timeline: list[tuple[str, int]] = []
    out = LoggedOutput(timeline, on_write=tap_meanwhile)
    await export_taskset(store, "seeded", out, fmt="jsonl", raw=True)

    assert len(outcomes) == 1 and isinstance(outcomes[0], Recorded)


@pytest.mark.parametrize("method", ["raw", "mv", "ds"])
async def test_an_answer_reviewers_settled_wrong_is_aggregated_as_their_correction(
    store: LabelStore, method: str
) -> None:
    await store.load_taskset(make_spec("seeded", items=8, overlap=1, review=EVERYONE_REVIEWS))
    for worker_id in (1, 2, 3):
        await join(store, worker_id)
    await answer(store, 1)  # worker 1 labels "text number 0" positive
    await answer(store, 2)
    first = await review_of(store, 2)
    await store.reviews.record_review(first.token, 2, False, corrected=1)
    await answer(store, 3)
    second = await review_of_item(store, 3, "text number 0")
    await store.reviews.record_review(second.token, 3, False, corrected=1)

    streamed = await export(store, "csv", method)

    assert streamed == await export_before_streaming(store, "csv", method)
    rows = list(csv.DictReader(io.StringIO(streamed.removeprefix("\ufeff"), newline="")))
    t0 = [row for row in rows if row["item_id"] == "t0"]
    if method == "raw":  # worker 1's answer as given, found wrong, with the right label
        assert [(row["worker"], row["label"], row["review"], row["correction"]) for row in t0] == [
            ("1", "positive", "wrong", "negative")
        ]
    else:
        assert [(row["label"], row["answers"]) for row in t0] == [("negative", "1")]
