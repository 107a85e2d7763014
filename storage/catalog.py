"""Per-process cache of each task set's rendering data and policy.

A task set's labels, texts, reward and rules never change once it is loaded (only its status
does, and the hot path reads that fresh), so each process reads them once. They are read
inside the caller's transaction, so no second connection is ever needed in the middle of one
(with SQLite's write lock held, it would wait for the first).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from storage.driver import Transaction
from storage.models import Item, TaskSet
from storage.results import LabelOption, TaskSetView
from tasksets.qualification import Qualification
from tasksets.quality import QualityRules
from tasksets.review import ReviewRule

TASKSET = select(TaskSet.__table__).where(TaskSet.id == bindparam("taskset"))
LAST_GOLD_POSITION = select(func.max(Item.position)).where(
    Item.taskset_id == bindparam("taskset"), Item.is_gold.is_(True)
)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a task set hands out work and judges workers."""

    gold_ratio: float
    last_gold_position: int | None  # None when the set has no gold items
    qualification: Qualification | None
    overlap_max: int
    overlap_confidence: float | None  # set for dynamic overlap
    reward_minor: int
    currency: str
    rules: QualityRules
    hold_hours: int = 0  # rewards stay pending this long
    gold_max_wer: float = 0.1  # a typed gold answer's allowed word error rate
    aggregate: str = "vote"  # a text set's aggregation: "vote" or "rover"
    review: ReviewRule | None = None


class TaskSetCatalog:
    """Each task set's view and policy, read once per process."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[TaskSetView, Policy]] = {}

    def cached(self, taskset_id: int) -> tuple[TaskSetView, Policy] | None:
        return self._entries.get(taskset_id)

    def forget(self, taskset_id: int) -> None:
        """Drop a deleted set (a cancelled draft): SQLite may give its id to the next one."""
        self._entries.pop(taskset_id, None)

    async def get(self, tx: Transaction, taskset_id: int) -> tuple[TaskSetView, Policy]:
        entry = self._entries.get(taskset_id)
        if entry is None:
            entry = self._entries[taskset_id] = await self._read(tx, taskset_id)
        return entry

    @staticmethod
    async def _read(tx: Transaction, taskset_id: int) -> tuple[TaskSetView, Policy]:
        row = await tx.first(TASKSET, {"taskset": taskset_id})
        if row is None:
            raise LookupError(f"no task set with id {taskset_id}")
        view = TaskSetView(
            id=row.id,
            name=row.name,
            title=row.title,
            instructions=row.instructions,
            question=row.question,
            labels=tuple(LabelOption(label["value"], label["text"]) for label in row.labels),
            reward_minor=row.reward_minor,
            currency=row.currency,
            layout=row.layout,
            answer=row.answer,
            max_length=row.max_length,
            min_seconds=row.min_seconds,
            max_seconds=row.max_seconds,
        )
        policy = Policy(
            gold_ratio=row.gold_ratio,
            last_gold_position=await tx.value(LAST_GOLD_POSITION, {"taskset": taskset_id}),
            qualification=(
                Qualification.model_validate(row.qualification) if row.qualification else None
            ),
            overlap_max=row.overlap_max,
            overlap_confidence=row.overlap_confidence,
            reward_minor=row.reward_minor,
            currency=row.currency,
            rules=QualityRules.model_validate(row.quality),
            hold_hours=row.hold_hours,
            gold_max_wer=row.gold_max_wer,
            aggregate=row.aggregate,
            review=ReviewRule.model_validate(row.review) if row.review else None,
        )
        return view, policy
