"""Storing a task set: its row and all its items in one transaction, read while written.

Kept apart from `LabelStore` so that `labelbot load` imports only the models and the engine
(a fifth of a second less at every start) and the handlers' upload path shares the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import row_writer
from storage.models import Item, TaskSet, TaskSetStatus
from tasksets.spec import Item as TaskItem
from tasksets.spec import LoadableTaskSet

# The columns store_taskset writes, in the table's order; the others keep their defaults.
ITEM_COLUMNS = (
    "taskset_id",
    "external_id",
    "position",
    "text",
    "media_kind",
    "media_ref",
    "gold_label",
    "explanation",
    "is_gold",
    "answer_count",
    "in_flight",
    "needed",
    "open",
)
_END = object()
T = TypeVar("T")


class TaskSetExists(ValueError):
    pass


async def read_ahead(chunks: Iterator[T]) -> AsyncIterator[T]:
    """The elements of a blocking iterator, each next one read in a thread while the caller
    works on the one before (storing a chunk waits on the database, reading one on the CPU)."""
    pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, _END))
    try:
        while (chunk := await pending) is not _END:
            pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, _END))
            yield chunk  # type: ignore[misc]
    finally:
        # The caller failed or stopped early: let the thread finish before the iterator goes.
        with contextlib.suppress(Exception):
            await pending


async def store_taskset(
    sessions: async_sessionmaker[AsyncSession],
    taskset: LoadableTaskSet,
    *,
    now: datetime,
    status: TaskSetStatus = TaskSetStatus.ACTIVE,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Store a task set and its items in one transaction; returns its id.

    The items of a `TaskSetStream` are read while they are stored: the next chunk is read and
    validated in a thread while this one is written. A problem in the file raises its
    TaskSetError here, and nothing is stored. `on_progress` gets the items stored so far."""
    spec = taskset.header
    async with sessions.begin() as session:
        if await session.scalar(select(TaskSet.id).where(TaskSet.name == spec.name)):
            raise TaskSetExists(f"a task set named {spec.name!r} already exists")
        row = TaskSet(
            name=spec.name,
            title=spec.title,
            instructions=spec.instructions,
            question=spec.question,
            labels=[{"value": label.value, "text": label.text} for label in spec.labels],
            overlap_min=spec.overlap.min,
            overlap_max=spec.overlap.max,
            overlap_confidence=spec.overlap.confidence,
            reward_minor=spec.reward_minor,
            currency=spec.currency,
            gold_ratio=spec.gold_ratio,
            qualification=spec.qualification.model_dump() if spec.qualification else None,
            quality=spec.quality.model_dump(),
            hold_hours=spec.hold_hours,
            layout=spec.layout,
            answer=spec.answer,
            max_length=spec.max_length,
            min_seconds=spec.min_seconds,
            max_seconds=spec.max_seconds,
            gold_max_wer=spec.gold_max_wer,
            aggregate=spec.aggregate,
            review=spec.review.model_dump(mode="json") if spec.review else None,
            bonus=spec.bonus.model_dump(mode="json") if spec.bonus else None,
            status=status,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        items = typing.cast(Table, Item.__table__)
        writer = await row_writer(await session.connection(), items, ITEM_COLUMNS)
        taskset_id, stored = row.id, 0

        def batches() -> Iterator[tuple[int, Any]]:
            # In the reading thread: parsing, checks, rows and their statements.
            position = 0
            for chunk in taskset.item_chunks():
                rows = item_rows(chunk, taskset_id, position, spec.overlap.min)
                position += len(rows)
                yield len(rows), writer.prepare(rows)

        async for count, batch in read_ahead(batches()):
            await writer.write(batch)
            stored += count
            if on_progress is not None:
                on_progress(stored)
        return taskset_id


def item_rows(
    items: Sequence[TaskItem], taskset_id: int, first_position: int, needed: int
) -> list[tuple[object, ...]]:
    """The values of ITEM_COLUMNS for items, the first at `first_position` in the set."""
    rows: list[tuple[object, ...]] = []
    for position, item in enumerate(items, first_position):
        media = item.media
        rows.append(
            (
                taskset_id,
                item.id,
                position,
                item.text,
                media[0] if media else None,
                media[1] if media else None,
                item.gold,
                item.explanation,
                item.gold is not None,
                0,  # answer_count
                0,  # in_flight
                needed,
                True,  # open
            )
        )
    return rows
