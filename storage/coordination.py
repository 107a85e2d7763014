"""What coordinators do to a task set from the chat, as units of work: drafts and publishing,
status changes, overviews and stats, suspending and reinstating workers (with the ledger's
reversal and restore), deciding gold disputes, and noticing a set that is complete.

Every write is one transaction. The CLI and the chat call the same operations (``LabelStore``
exposes this service as ``store.coordination``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    case,
    delete,
    distinct,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.broadcasts import BroadcastQueue
from storage.engine import as_utc
from storage.ledger import on_reinstated, on_suspended
from storage.models import (
    Answer,
    AnswerKind,
    Dispute,
    DisputeStatus,
    Item,
    Membership,
    MembershipStatus,
    Review,
    ReviewVerdict,
    TaskSet,
    TaskSetStatus,
    Worker,
    live_answer,
)
from storage.results import TaskSetView, WorkerScore
from storage.session_tx import SessionTransaction
from storage.statements.leases import EXPIRE_WORKER_IN_SET, FREE_SLOTS
from storage.statements.quality import REPLACE_ANSWERS_OF
from storage.statements.tallies import ALL_SETS, MOVE_GOLD_CORRECT, REGRADE_TALLY
from tasksets.qualification import Qualification, qualification_verdict
from tasksets.quality import QualityRules, gold_accuracy_reason, smoothed_accuracy
from tasksets.standing import Period, period_start
from tasksets.text import gold_text_matches

if TYPE_CHECKING:
    from storage.store import LabelStore

# Which statuses each coordinator action moves a set from, and to.
TRANSITIONS: dict[str, tuple[tuple[TaskSetStatus, ...], TaskSetStatus]] = {
    "pause": ((TaskSetStatus.ACTIVE,), TaskSetStatus.PAUSED),
    "resume": ((TaskSetStatus.PAUSED, TaskSetStatus.CLOSED), TaskSetStatus.ACTIVE),
    "close": ((TaskSetStatus.ACTIVE, TaskSetStatus.PAUSED), TaskSetStatus.CLOSED),
}
# "Not sure" reasons shown per item.
REASONS = 3
# Smoothed gold accuracy buckets of the stats (lower bounds).
ACCURACY_BUCKETS = (0.0, 0.6, 0.7, 0.8, 0.9)
SHOWN_WORKERS = 5
REINSTATED_BY_CORRECTION = "reinstated: a control answer was corrected"
RECENT = timedelta(hours=1)


# ------------------------------------------------------------------------ result types


@dataclass(frozen=True, slots=True)
class TaskSetOverview:
    """One task set on the coordinator's /tasksets list."""

    taskset_id: int
    name: str
    title: str
    status: TaskSetStatus
    items: int  # regular items (gold items aside)
    items_done: int
    gold_items: int
    set_aside: int
    answers: int
    gold_answers: int
    gold_correct: int
    workers: int
    workers_last_hour: int
    answers_last_hour: int
    remaining_answers: int  # answers still wanted to complete the set

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None

    @property
    def eta(self) -> timedelta | None:
        """At the last hour's pace, when the set will be complete; None without a pace."""
        if not self.remaining_answers:
            return timedelta(0)
        if not self.answers_last_hour:
            return None
        return timedelta(hours=self.remaining_answers / self.answers_last_hour)


@dataclass(frozen=True, slots=True)
class TaskSetStats:
    overview: TaskSetOverview
    alpha: float  # Krippendorff's alpha of the counted answers; nan when undefined
    accuracy_buckets: list[tuple[float, int]]  # (lower bound, workers) of smoothed gold accuracy
    labels: list[tuple[str, int]]  # (button text, answers), in label order
    unsure: int
    skipped: int
    open_items: int
    disputes_waiting: int
    hourly: list[tuple[datetime, int]]  # labeled answers on regular items per hour (UTC)
    needed_answers: int  # labeled answers the regular items ask for in all


@dataclass(frozen=True, slots=True)
class WorkersReport:
    view: TaskSetView
    best: list[WorkerScore]
    worst: list[WorkerScore]
    suspended: list[WorkerScore]
    total: int


@dataclass(frozen=True, slots=True)
class Published:
    view: TaskSetView
    broadcast_id: int
    recipients: int


@dataclass(frozen=True, slots=True)
class Suspended:
    view: TaskSetView
    worker_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class DisputeCase:
    """A waiting gold dispute as the coordinator reviews it."""

    dispute_id: int
    taskset_id: int
    item_id: str
    text: str | None
    media_kind: str | None
    gold: str  # button text of the gold label
    answer: str  # button text of the worker's answer
    worker_id: int
    worker_name: str
    reason: str | None
    waiting: int  # open disputes of the set, this one included


@dataclass(frozen=True, slots=True)
class DisputeDecision:
    accepted: bool
    view: TaskSetView
    item_text: str | None
    gold: str  # the gold label's button text now (corrected, or kept)
    worker_id: int  # who disputed
    also_accepted: list[int]  # other workers whose open dispute the correction settles
    rescored: int  # workers whose gold score was recounted
    reinstated: list[int]
    suspended: list[tuple[int, str]]  # (worker, reason) now below the accuracy threshold


@dataclass(slots=True)
class Regraded:
    """The answers to an item whose gold answer changed, judged again."""

    workers: set[int] = field(default_factory=set)  # who answered it
    right: list[int] = field(default_factory=list)  # answers the new gold answer proves right
    # (worker, when they answered, +1 now right / -1 now wrong) per answer whose verdict moved
    moves: list[tuple[int, datetime, int]] = field(default_factory=list)
    # (reviewer, +1 / -1) per gold review of an answer to it whose verdict moved: a control
    # answer in the reviewer's standing, not in the boards' tallies (which count answers)
    review_moves: list[tuple[int, int]] = field(default_factory=list)


def gold_matches(gold: str | None, label: str | None, text: str | None, max_wer: float) -> bool:
    """Whether an answer (a label, or a typed text) is right against a gold answer, as the
    answer's own transaction judged it."""
    if gold is None:
        return False
    if label is not None:
        return label == gold
    return text is not None and gold_text_matches(gold, text, max_wer)


@dataclass(frozen=True, slots=True)
class UnsureItem:
    item_id: str
    text: str | None
    count: int
    reasons: list[str]  # why, in the workers' words (the latest few of those who said)


@dataclass(frozen=True, slots=True)
class Completed:
    view: TaskSetView
    items: int
    answers: int


def label_text(view: TaskSetView, value: str | None) -> str:
    return next((label.text for label in view.labels if label.value == value), value or "")


def hour_bucket(column: Any, dialect: str) -> ColumnElement[str]:
    """``YYYY-MM-DD HH`` of a UTC timestamp column: SQLite stores text, PostgreSQL timestamptz."""
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d %H", column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")


class Coordination:
    """The coordinator's units of work; one per ``LabelStore``."""

    def __init__(self, store: LabelStore, broadcasts: BroadcastQueue) -> None:
        self.store = store
        self.sessions = store.sessions
        self.broadcasts = broadcasts

    @property
    def clock(self) -> Any:
        return self.store.clock

    # ------------------------------------------------------------- drafts and status

    async def publish(self, taskset_id: int, chat_id: int) -> Published | None:
        """Open a draft to workers and queue the message telling them, in one transaction;
        None when it is no draft (published already, or cancelled)."""
        now = self.clock()
        async with self.sessions.begin() as session:
            opened = await session.execute(
                update(TaskSet)
                .where(TaskSet.id == taskset_id, TaskSet.status == TaskSetStatus.DRAFT)
                .values(status=TaskSetStatus.ACTIVE)
            )
            if not opened.rowcount:  # type: ignore[attr-defined]
                return None
            broadcast_id, recipients = await BroadcastQueue.create(
                session, taskset_id, chat_id, now
            )
        return Published(await self.store.view(taskset_id), broadcast_id, recipients)

    async def discard_draft(self, taskset_id: int) -> str | None:
        """Delete a draft with its items (Cancel stores nothing); returns its name, or None
        when it is no draft."""
        async with self.sessions.begin() as session:
            name = await session.scalar(
                delete(TaskSet)
                .where(TaskSet.id == taskset_id, TaskSet.status == TaskSetStatus.DRAFT)
                .returning(TaskSet.name)
            )
        self.store.labeling.catalog.forget(taskset_id)
        return name

    async def change_status(self, taskset_id: int, action: str) -> TaskSetStatus | None:
        """Pause, resume or close a set; the new status, or None when the set is not in a
        status the action applies to (a draft is only published)."""
        sources, target = TRANSITIONS[action]
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(TaskSet)
                .where(TaskSet.id == taskset_id, TaskSet.status.in_(sources))
                .values(status=target)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
        if target == TaskSetStatus.CLOSED:  # as `set_taskset_status` does: once per worker
            await self.store.ledger.grant_bonuses(taskset_id)
        return target

    async def status_of(self, taskset_id: int) -> TaskSetStatus | None:
        async with self.sessions() as session:
            return await session.scalar(select(TaskSet.status).where(TaskSet.id == taskset_id))

    # -------------------------------------------------------------- reads for /tasksets

    async def overview(self, taskset_id: int | None = None) -> list[TaskSetOverview]:
        """Every set (or one) with progress, pace and ETA, oldest first."""
        progress = [
            row
            for row in await self.store.taskset_progress()
            if taskset_id is None or row.taskset_id == taskset_id
        ]
        since = self.clock() - RECENT
        async with self.sessions() as session:
            remaining_rows = await session.execute(
                select(
                    Item.taskset_id,
                    func.coalesce(
                        func.sum(
                            case(
                                (Item.needed > Item.answer_count, Item.needed - Item.answer_count),
                                else_=0,
                            )
                        ),
                        0,
                    ),
                )
                .where(Item.is_gold.is_(False), Item.set_aside_reason.is_(None))
                .group_by(Item.taskset_id)
            )
            recent_rows = await session.execute(
                select(Answer.taskset_id, func.count(), func.count(distinct(Answer.worker_id)))
                .where(Answer.created_at >= since, Answer.kind == AnswerKind.LABEL, live_answer())
                .group_by(Answer.taskset_id)
            )
            member_rows = await session.execute(
                select(Membership.taskset_id, func.count()).group_by(Membership.taskset_id)
            )
            remaining = {row[0]: int(row[1]) for row in remaining_rows}
            recent = {row[0]: (int(row[1]), int(row[2])) for row in recent_rows}
            members = {row[0]: int(row[1]) for row in member_rows}
        return [
            TaskSetOverview(
                taskset_id=row.taskset_id,
                name=row.name,
                title=row.title,
                status=TaskSetStatus(row.status),
                items=row.items - row.gold_items,
                items_done=row.items_done,
                gold_items=row.gold_items,
                set_aside=row.set_aside,
                answers=row.answers,
                gold_answers=row.gold_answers,
                gold_correct=row.gold_correct,
                workers=members.get(row.taskset_id, 0),
                workers_last_hour=recent.get(row.taskset_id, (0, 0))[1],
                answers_last_hour=recent.get(row.taskset_id, (0, 0))[0],
                remaining_answers=remaining.get(row.taskset_id, 0),
            )
            for row in progress
        ]

    async def stats(self, taskset_id: int) -> TaskSetStats | None:
        """Agreement, score distribution, label mix, what is open, and the pace per hour."""
        from storage.exports import quality_report  # exports builds on the store: no cycle

        found = await self.overview(taskset_id)
        if not found:
            return None
        view = await self.store.view(taskset_id)
        alpha = (await quality_report(self.store, taskset_id, "mv")).alpha
        async with self.sessions() as session:
            kinds = await session.execute(
                select(Answer.kind, Answer.label, func.count())
                .where(Answer.taskset_id == taskset_id, live_answer())
                .group_by(Answer.kind, Answer.label)
            )
            scores = await session.execute(
                select(Membership.gold_correct, Membership.gold_answers).where(
                    Membership.taskset_id == taskset_id, Membership.gold_answers > 0
                )
            )
            hour = hour_bucket(Answer.created_at, self.store.engine.dialect.name)
            hourly = await session.execute(
                select(hour, func.count())
                .join(Item, Item.id == Answer.item_id)
                .where(
                    Answer.taskset_id == taskset_id,
                    Answer.kind == AnswerKind.LABEL,
                    Item.is_gold.is_(False),
                    live_answer(),
                )
                .group_by(hour)
                .order_by(hour)
            )
            needed = await session.scalar(
                select(func.coalesce(func.sum(Item.needed), 0)).where(
                    Item.taskset_id == taskset_id,
                    Item.is_gold.is_(False),
                    Item.set_aside_reason.is_(None),
                )
            )
            disputes = await session.scalar(
                select(func.count())
                .select_from(Dispute)
                .join(Answer, Answer.id == Dispute.answer_id)
                .where(Answer.taskset_id == taskset_id, Dispute.status == DisputeStatus.OPEN)
            )
            label_counts: Counter[str] = Counter()
            by_kind: Counter[AnswerKind] = Counter()
            for kind, label, count in kinds:
                by_kind[AnswerKind(kind)] += count
                if label is not None:
                    label_counts[label] += count
            buckets = Counter(
                max(b for b in ACCURACY_BUCKETS if smoothed_accuracy(correct, total) >= b)
                for correct, total in scores
            )
            hours = [
                (datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC), int(count))
                for bucket, count in hourly
            ]
        overview = found[0]
        return TaskSetStats(
            overview=overview,
            alpha=alpha,
            accuracy_buckets=[(bound, buckets.get(bound, 0)) for bound in ACCURACY_BUCKETS],
            labels=[(label.text, label_counts.get(label.value, 0)) for label in view.labels],
            unsure=by_kind[AnswerKind.UNSURE],
            skipped=by_kind[AnswerKind.SKIP],
            open_items=overview.items - overview.items_done - overview.set_aside,
            disputes_waiting=int(disputes or 0),
            hourly=hours,
            needed_answers=int(needed or 0),
        )

    async def unsure_items(self, taskset_id: int, limit: int = 10) -> list[UnsureItem]:
        """The items workers most often called "Not sure": where the guidelines need work."""
        async with self.sessions() as session:
            count = func.count().label("count")
            unsure = (Answer.kind == AnswerKind.UNSURE) & live_answer()
            rows = (
                await session.execute(
                    select(Item.id, Item.external_id, Item.text, count)
                    .join(Answer, Answer.item_id == Item.id)
                    .where(Answer.taskset_id == taskset_id, unsure)
                    .group_by(Item.id, Item.external_id, Item.text)
                    .order_by(count.desc(), Item.external_id)
                    .limit(limit)
                )
            ).all()
            said: dict[int, list[str | None]] = {}
            reasons = await session.execute(
                select(Answer.item_id, Answer.reason)
                .where(
                    Answer.item_id.in_([row[0] for row in rows]),
                    unsure,
                    Answer.reason.is_not(None),
                )
                .order_by(Answer.id.desc())
            )
            for item, reason in reasons:
                said.setdefault(item, []).append(reason)
            return [
                UnsureItem(
                    external_id, text, int(n), [str(r) for r in said.get(item_id, [])][:REASONS]
                )
                for item_id, external_id, text, n in rows
            ]

    # ------------------------------------------------------------------------ workers

    async def workers(self, taskset_id: int) -> WorkersReport:
        """Best and worst workers by smoothed gold accuracy, and who is suspended and why."""
        scores = await self.store.worker_scores(taskset_id)
        view = await self.store.view(taskset_id)
        excluded = (MembershipStatus.SUSPENDED, MembershipStatus.FAILED)
        standing = [s for s in scores if s.status not in excluded]
        ranked = sorted(standing, key=lambda s: (-s.gold_accuracy, -s.answers, s.worker_id))
        best = ranked[:SHOWN_WORKERS]
        worst = [s for s in reversed(ranked) if s not in best][:SHOWN_WORKERS]
        return WorkersReport(
            view=view,
            best=best,
            worst=worst,
            suspended=[s for s in scores if s.status in excluded],
            total=len(scores),
        )

    async def suspend(self, taskset_id: int, worker_id: int, reason: str) -> Suspended | None:
        """Suspend a worker in a set by hand, as the quality rules do: their answers stop
        counting (each item they labeled asks for one more) and their live item goes back to
        the pool. None when they are not active or qualifying there."""
        async with self.sessions.begin() as session:
            if not await self._suspend(session, taskset_id, worker_id, reason, self.clock()):
                return None
            freed = Counter(
                row.item_id
                for row in await session.execute(
                    EXPIRE_WORKER_IN_SET, {"worker": worker_id, "taskset": taskset_id}
                )
            )
            for item_id, slots in freed.items():
                await session.execute(FREE_SLOTS, {"item": item_id, "freed": slots})
        return Suspended(await self.store.view(taskset_id), worker_id, reason)

    @staticmethod
    async def _suspend(
        session: AsyncSession, taskset_id: int, worker_id: int, reason: str, now: datetime
    ) -> bool:
        """Suspend in the caller's transaction, as the quality rules do: answers stop counting,
        pending money in the set is reversed (``storage.ledger.on_suspended``)."""
        result = await session.execute(
            update(Membership)
            .where(
                Membership.worker_id == worker_id,
                Membership.taskset_id == taskset_id,
                Membership.status.in_([MembershipStatus.ACTIVE, MembershipStatus.QUALIFYING]),
            )
            .values(status=MembershipStatus.SUSPENDED, status_reason=reason)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await session.execute(REPLACE_ANSWERS_OF, {"worker": worker_id, "taskset": taskset_id})
        await on_suspended(SessionTransaction(session), worker_id, taskset_id, reason, now)
        return True

    async def reinstate(self, taskset_id: int, worker_id: int) -> TaskSetView | None:
        """Lift a suspension (or a failed qualification) in one set, as ``labelbot workers
        reinstate ID --taskset NAME`` does; None when there was none."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Membership)
                .where(
                    Membership.worker_id == worker_id,
                    Membership.taskset_id == taskset_id,
                    Membership.status.in_([MembershipStatus.SUSPENDED, MembershipStatus.FAILED]),
                )
                .values(status=MembershipStatus.ACTIVE, status_reason="reinstated")
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
            await on_reinstated(SessionTransaction(session), worker_id, taskset_id, self.clock())
        return await self.store.view(taskset_id)

    # ----------------------------------------------------------------------- disputes

    async def next_dispute(self, taskset_id: int) -> DisputeCase | None:
        """The oldest open gold dispute of a set, with what the coordinator needs to judge."""
        async with self.sessions() as session:
            waiting = await session.scalar(
                select(func.count())
                .select_from(Dispute)
                .join(Answer, Answer.id == Dispute.answer_id)
                .where(Answer.taskset_id == taskset_id, Dispute.status == DisputeStatus.OPEN)
            )
            row = (
                await session.execute(
                    select(
                        Dispute.id,
                        Dispute.reason,
                        Answer.worker_id,
                        # A typed answer has no label: the coordinator reads its text.
                        func.coalesce(Answer.label, Answer.text).label("label"),
                        Item.external_id,
                        Item.text,
                        Item.media_kind,
                        Item.gold_label,
                        Worker.display_name,
                    )
                    .join(Answer, Answer.id == Dispute.answer_id)
                    .join(Item, Item.id == Answer.item_id)
                    .join(Worker, Worker.id == Answer.worker_id)
                    .where(Answer.taskset_id == taskset_id, Dispute.status == DisputeStatus.OPEN)
                    .order_by(Dispute.id)
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        view = await self.store.view(taskset_id)
        return DisputeCase(
            dispute_id=row.id,
            taskset_id=taskset_id,
            item_id=row.external_id,
            text=row.text,
            media_kind=row.media_kind,
            gold=label_text(view, row.gold_label),
            answer=label_text(view, row.label),
            worker_id=row.worker_id,
            worker_name=row.display_name,
            reason=row.reason,
            waiting=int(waiting or 0),
        )

    async def decide_dispute(
        self, dispute_id: int, *, accept: bool, coordinator_id: int
    ) -> DisputeDecision | None:
        """Accept (the gold answer becomes the worker's label or text, every answer to the item
        and every gold review of one is judged again, and the gold score and standing of who
        answered or reviewed it follow) or reject
        an open dispute, in one transaction; None when it is not open (decided already, or no
        such)."""
        now = self.clock()
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    select(
                        Answer.worker_id,
                        Answer.label,
                        Answer.text.label("answer_text"),
                        Answer.item_id,
                        Answer.taskset_id,
                        Item.gold_label,
                        Item.text,
                        TaskSet.quality,
                        TaskSet.qualification,
                        TaskSet.gold_max_wer,
                    )
                    .join(Dispute, Dispute.answer_id == Answer.id)
                    .join(Item, Item.id == Answer.item_id)
                    .join(TaskSet, TaskSet.id == Answer.taskset_id)
                    .where(Dispute.id == dispute_id)
                )
            ).first()
            if row is None:
                return None
            decided = await session.execute(
                update(Dispute)
                .where(Dispute.id == dispute_id, Dispute.status == DisputeStatus.OPEN)
                .values(
                    status=DisputeStatus.ACCEPTED if accept else DisputeStatus.REJECTED,
                    decided_at=now,
                    decided_by=coordinator_id,
                )
            )
            if not decided.rowcount:  # type: ignore[attr-defined]
                return None
            view = await self.store.view(row.taskset_id)
            # A label, or for a set answered by typing, the worker's text.
            proposed = row.label if row.label is not None else row.answer_text
            if not accept or proposed is None or proposed == row.gold_label:
                return DisputeDecision(
                    accepted=accept,
                    view=view,
                    item_text=row.text,
                    gold=label_text(view, row.gold_label),
                    worker_id=row.worker_id,
                    also_accepted=[],
                    rescored=0,
                    reinstated=[],
                    suspended=[],
                )
            regraded = await self._regrade(
                session, row.item_id, was=row.gold_label, now=proposed, max_wer=row.gold_max_wer
            )
            await session.execute(
                update(Item).where(Item.id == row.item_id).values(gold_label=proposed)
            )
            # Other waiting disputes the new gold answer proves right are settled with it.
            settled = await session.execute(
                update(Dispute)
                .where(
                    Dispute.status == DisputeStatus.OPEN,
                    Dispute.answer_id.in_(regraded.right),
                )
                .values(status=DisputeStatus.ACCEPTED, decided_at=now, decided_by=coordinator_id)
                .returning(Dispute.answer_id)
            )
            settled_answers = [answer_id for (answer_id,) in settled]
            also = (
                list(
                    await session.scalars(
                        select(Answer.worker_id).where(Answer.id.in_(settled_answers))
                    )
                )
                if settled_answers
                else []
            )
            rules = QualityRules.model_validate(row.quality)
            qualification = (
                Qualification.model_validate(row.qualification) if row.qualification else None
            )
            reinstated, suspended = await self._rescore(
                session, row.taskset_id, regraded, rules, qualification, now
            )
        return DisputeDecision(
            accepted=True,
            view=view,
            item_text=row.text,
            gold=label_text(view, proposed),
            worker_id=row.worker_id,
            also_accepted=also,
            rescored=len(regraded.workers),
            reinstated=reinstated,
            suspended=suspended,
        )

    @staticmethod
    async def _regrade(
        session: AsyncSession, item_id: int, *, was: str | None, now: str, max_wer: float
    ) -> Regraded:
        """Judge every control answer to the item against the old and the new gold answer
        (labels by equality, typed answers by ``gold_text_matches``), and every gold review of
        an answer to it: the reviewer's verdict is a control answer too."""
        answers = await session.execute(
            select(Answer.id, Answer.worker_id, Answer.label, Answer.text, Answer.created_at).where(
                Answer.item_id == item_id,
                Answer.kind.in_((AnswerKind.LABEL, AnswerKind.TEXT)),
                live_answer(),
            )
        )
        regraded = Regraded()
        for answer in answers:
            before = gold_matches(was, answer.label, answer.text, max_wer)
            after = gold_matches(now, answer.label, answer.text, max_wer)
            regraded.workers.add(answer.worker_id)
            if after:
                regraded.right.append(answer.id)
            if after != before:
                regraded.moves.append(
                    (answer.worker_id, as_utc(answer.created_at), 1 if after else -1)
                )
        # A gold review was right when its verdict said what the gold answer says of the label.
        reviews = await session.execute(
            select(Review.worker_id, Review.verdict, Answer.label)
            .join(Answer, Answer.id == Review.answer_id)
            .where(Answer.item_id == item_id, Review.is_gold, Review.verdict.is_not(None))
        )
        for review in reviews:
            said_right = review.verdict == ReviewVerdict.CORRECT
            before = said_right == (review.label == was)
            after = said_right == (review.label == now)
            regraded.workers.add(review.worker_id)
            if after != before:
                regraded.review_moves.append((review.worker_id, 1 if after else -1))
        return regraded

    async def _rescore(
        self,
        session: AsyncSession,
        taskset_id: int,
        regraded: Regraded,
        rules: QualityRules,
        qualification: Qualification | None,
        now: datetime,
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """Move the gold score of everyone whose answer to the corrected item changed verdict
        (in their standing and in the boards' tallies: control answers that reviews added stay
        counted) or whose gold review of one did (in their standing), then re-judge the standing
        of everyone who answered or reviewed it: a worker the accuracy
        rule had suspended and who now passes is reinstated; an active one who now fails is
        suspended; one who failed the qualification and now passes it is let in. Returns
        (reinstated, suspended)."""
        before = {
            member.worker_id: member
            for member in (
                await session.execute(
                    select(
                        Membership.worker_id,
                        Membership.status,
                        Membership.status_reason,
                        Membership.gold_answers,
                        Membership.gold_correct,
                    ).where(
                        Membership.taskset_id == taskset_id,
                        Membership.worker_id.in_(regraded.workers),
                    )
                )
            ).all()
        }
        per_worker: Counter[int] = Counter()
        tallies: Counter[tuple[int, int, str, date]] = Counter()
        for worker_id, answered_at, delta in regraded.moves:
            per_worker[worker_id] += delta
            for scope in (taskset_id, ALL_SETS):
                for period in Period:
                    start = period_start(period, answered_at)
                    tallies[worker_id, scope, period.value, start] += delta
        for worker_id, delta in regraded.review_moves:
            per_worker[worker_id] += delta
        connection = await session.connection()
        if any(per_worker.values()):
            await connection.execute(
                MOVE_GOLD_CORRECT,
                [
                    {"mover": worker_id, "in_set": taskset_id, "delta": delta}
                    for worker_id, delta in per_worker.items()
                    if delta
                ],
            )
        if any(tallies.values()):
            await connection.execute(
                REGRADE_TALLY,
                [
                    {
                        "tally_worker": worker_id,
                        "tally_scope": scope,
                        "tally_period": period,
                        "tally_start": start,
                        "delta": delta,
                    }
                    for (worker_id, scope, period, start), delta in tallies.items()
                    if delta
                ],
            )
        reinstated: list[int] = []
        suspended: list[tuple[int, str]] = []
        for worker_id, old in before.items():
            gold_correct = old.gold_correct + per_worker[worker_id]
            gold_answers = old.gold_answers
            old_reason = gold_accuracy_reason(old.gold_correct, gold_answers, rules)
            new_reason = gold_accuracy_reason(gold_correct, gold_answers, rules)
            by_rule = old.status == MembershipStatus.SUSPENDED and (
                old_reason is not None and old.status_reason == old_reason
            )
            if old.status == MembershipStatus.FAILED and qualification is not None:
                # Their gold answers are their training answers: judge those again.
                verdict = qualification_verdict(
                    qualification, gold_answers, gold_correct, out_of_items=True
                )
                if verdict is not None and verdict.passed:
                    await self._set_standing(
                        session, taskset_id, worker_id, MembershipStatus.ACTIVE, verdict.reason
                    )
                    reinstated.append(worker_id)
            elif by_rule and new_reason is None:
                active = MembershipStatus.ACTIVE
                await self._set_standing(
                    session, taskset_id, worker_id, active, REINSTATED_BY_CORRECTION
                )
                await on_reinstated(SessionTransaction(session), worker_id, taskset_id, now)
                reinstated.append(worker_id)
            elif by_rule and new_reason is not None:  # still below: the reason with the new count
                await self._set_standing(
                    session, taskset_id, worker_id, MembershipStatus.SUSPENDED, new_reason
                )
            elif old.status == MembershipStatus.ACTIVE and new_reason is not None:
                await self._suspend(session, taskset_id, worker_id, new_reason, now)
                suspended.append((worker_id, new_reason))
        return sorted(reinstated), sorted(suspended)

    @staticmethod
    async def _set_standing(
        session: AsyncSession,
        taskset_id: int,
        worker_id: int,
        status: MembershipStatus,
        reason: str,
    ) -> None:
        await session.execute(
            update(Membership)
            .where(Membership.worker_id == worker_id, Membership.taskset_id == taskset_id)
            .values(status=status, status_reason=reason)
        )

    # ------------------------------------------------------------------- completion

    async def newly_completed(self) -> list[Completed]:
        """Active sets whose every item got its answers since the last look; each is marked so
        that the coordinators are told once, whichever process looks first."""
        now = self.clock()
        incomplete = exists().where(
            Item.taskset_id == TaskSet.id,
            Item.is_gold.is_(False),
            Item.set_aside_reason.is_(None),
            Item.answer_count < Item.needed,
        )
        has_items = exists().where(Item.taskset_id == TaskSet.id, Item.is_gold.is_(False))
        completed: list[int] = []
        async with self.sessions.begin() as session:
            candidates = list(
                await session.scalars(
                    select(TaskSet.id).where(
                        TaskSet.status == TaskSetStatus.ACTIVE,
                        TaskSet.completed_at.is_(None),
                        has_items,
                        ~incomplete,
                    )
                )
            )
            for taskset_id in candidates:
                marked = await session.execute(
                    update(TaskSet)
                    .where(TaskSet.id == taskset_id, TaskSet.completed_at.is_(None))
                    .values(completed_at=now)
                )
                if marked.rowcount:  # type: ignore[attr-defined]
                    completed.append(taskset_id)
        result = []
        for overview in await self.overview():
            if overview.taskset_id in completed:
                view = await self.store.view(overview.taskset_id)
                result.append(Completed(view, overview.items, overview.answers))
        return result
