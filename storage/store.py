"""Units of work the bot needs. Every operation that must be atomic is one transaction here."""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any, Literal

from sqlalchemy import Select, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.engine import is_sqlite, session_factory
from storage.models import (
    Answer,
    AnswerKind,
    Assignment,
    AssignmentState,
    Dispute,
    Item,
    LedgerEntry,
    Membership,
    MembershipStatus,
    TaskSet,
    TaskSetStatus,
    Worker,
    WorkerStatus,
)
from storage.results import (
    AnswerOutcome,
    GoldFeedback,
    LabelOption,
    NextItem,
    NoItem,
    NoItemReason,
    Recorded,
    Rejected,
    Rejection,
    ServedItem,
    StatusChange,
    TaskSetView,
)
from tasksets.quality import (
    QualityRules,
    WorkerRecord,
    item_posterior,
    smoothed_accuracy,
    suspension_reason,
)
from tasksets.spec import TaskSetSpec

Choice = int | Literal["skip", "unsure"]
SKIPPED_TEXT = {"skip": "Skipped", "unsure": "Not sure"}
DEFAULT_LEASE = timedelta(minutes=10)
# How often (in a worker's answers) the rules that read recent history run.
RULE_CHECK_EVERY = 5
CROWD_SAMPLE = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class TaskSetExists(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TaskSetProgress:
    name: str
    title: str
    status: str
    items: int
    items_done: int
    gold_items: int
    answers: int
    gold_answers: int
    gold_correct: int

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None


ItemRowQuery = Select[int, str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    item_id: str
    worker_id: int
    kind: AnswerKind
    label: str | None
    seconds: float
    created_at: datetime
    membership: MembershipStatus


@dataclass(frozen=True, slots=True)
class WorkerScore:
    worker_id: int
    name: str
    status: MembershipStatus
    reason: str | None
    answers: int
    gold_answers: int
    gold_correct: int
    gold_accuracy: float  # smoothed with the Beta prior
    median_seconds: float | None
    labels: dict[str, int]
    earned_minor: int


@dataclass(frozen=True, slots=True)
class StoredItem:
    item_id: str
    text: str | None
    gold: str | None


@dataclass(frozen=True, slots=True)
class LeasedRow:
    item_id: int
    text: str | None
    media_kind: str | None
    media_ref: str | None


def _pick_regular(for_update: bool) -> ItemRowQuery:
    """The next open item for a worker: started items first, then file order.

    It walks ``ix_items_pick`` in order and stops at the first item the worker has not been
    given, so its cost depends on the worker's history, not on the size of the set.
    """
    query = (
        select(Item.id, Item.text, Item.media_kind, Item.media_ref)
        .where(
            Item.taskset_id == bindparam("taskset_id"),
            Item.is_gold.is_(False),
            Item.open.is_(True),
            ~exists().where(
                Assignment.worker_id == bindparam("worker_id"), Assignment.item_id == Item.id
            ),
        )
        .order_by(Item.answer_count.desc(), Item.position)
        .limit(1)
    )
    # Two processes never take the same row: the second skips it and takes the next one.
    return query.with_for_update(skip_locked=True, of=Item) if for_update else query


def _pick_gold(after: bool) -> ItemRowQuery:
    """An unseen gold item from a random starting position (wrapping around once)."""
    position = Item.position >= bindparam("start") if after else Item.position < bindparam("start")
    return (
        select(Item.id, Item.text, Item.media_kind, Item.media_ref)
        .where(
            Item.taskset_id == bindparam("taskset_id"),
            Item.is_gold.is_(True),
            position,
            ~exists().where(
                Assignment.worker_id == bindparam("worker_id"), Assignment.item_id == Item.id
            ),
        )
        .order_by(Item.position)
        .limit(1)
    )


class LabelStore:
    """The storage service the handlers call; created once in ``post_init``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        self.lease = lease
        self.clock = clock
        self.rng = rng or random.Random()
        self._views: dict[int, TaskSetView] = {}
        self._rules: dict[int, tuple[TaskSet, QualityRules]] = {}
        sqlite = is_sqlite(engine.url)
        # SQLite serialises writers with BEGIN IMMEDIATE; row locks are PostgreSQL's tool.
        self.next_item_query = _pick_regular(for_update=not sqlite)
        self._pick_gold_after = _pick_gold(after=True)
        self._pick_gold_before = _pick_gold(after=False)

    # ----------------------------------------------------------------- task sets

    async def load_taskset(
        self,
        spec: TaskSetSpec,
        *,
        status: TaskSetStatus = TaskSetStatus.ACTIVE,
    ) -> int:
        """Store a validated task set and its items in one transaction; returns its id."""
        now = self.clock()
        async with self.sessions.begin() as session:
            if await session.scalar(select(TaskSet.id).where(TaskSet.name == spec.name)):
                raise TaskSetExists(f"a task set named {spec.name!r} already exists")
            taskset = TaskSet(
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
                status=status,
                created_at=now,
            )
            session.add(taskset)
            await session.flush()
            rows = []
            for position, item in enumerate(spec.items):
                media = item.media
                rows.append(
                    {
                        "taskset_id": taskset.id,
                        "external_id": item.id,
                        "position": position,
                        "text": item.text,
                        "media_kind": media[0] if media else None,
                        "media_ref": media[1] if media else None,
                        "gold_label": item.gold,
                        "explanation": item.explanation,
                        "is_gold": item.gold is not None,
                        "answer_count": 0,
                        "in_flight": 0,
                        "needed": spec.overlap.min,
                        "open": True,
                    }
                )
            for start in range(0, len(rows), 5000):
                await session.execute(insert(Item), rows[start : start + 5000])
            return taskset.id

    async def taskset_id(self, name: str) -> int | None:
        async with self.sessions() as session:
            return await session.scalar(select(TaskSet.id).where(TaskSet.name == name))

    async def active_tasksets(self) -> list[TaskSetView]:
        async with self.sessions() as session:
            ids = await session.scalars(
                select(TaskSet.id)
                .where(TaskSet.status == TaskSetStatus.ACTIVE)
                .order_by(TaskSet.id)
            )
            id_list = list(ids)
        return [await self.view(taskset_id) for taskset_id in id_list]

    async def view(self, taskset_id: int) -> TaskSetView:
        """Rendering data of a task set; immutable after load, so cached for the process."""
        cached = self._views.get(taskset_id)
        if cached is None:
            async with self.sessions() as session:
                taskset = await session.get_one(TaskSet, taskset_id)
            cached = self._views[taskset_id] = TaskSetView(
                id=taskset.id,
                name=taskset.name,
                title=taskset.title,
                instructions=taskset.instructions,
                question=taskset.question,
                labels=tuple(LabelOption(lab["value"], lab["text"]) for lab in taskset.labels),
                reward_minor=taskset.reward_minor,
                currency=taskset.currency,
            )
            self._rules[taskset_id] = (taskset, QualityRules.model_validate(taskset.quality))
        return cached

    async def set_taskset_status(self, name: str, status: TaskSetStatus) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(TaskSet).where(TaskSet.name == name).values(status=status)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def taskset_progress(self) -> list[TaskSetProgress]:
        async with self.sessions() as session:
            item_stats = (
                select(
                    Item.taskset_id,
                    func.count().label("items"),
                    func.count()
                    .filter(Item.is_gold.is_(False), Item.answer_count >= Item.needed)
                    .label("done"),
                    func.count().filter(Item.is_gold.is_(True)).label("gold"),
                )
                .group_by(Item.taskset_id)
                .subquery()
            )
            answer_stats = (
                select(
                    Answer.taskset_id,
                    func.count().filter(Answer.kind == AnswerKind.LABEL).label("answers"),
                    func.count()
                    .filter(Item.is_gold.is_(True), Answer.kind == AnswerKind.LABEL)
                    .label("gold_answers"),
                    func.count()
                    .filter(Item.is_gold.is_(True), Answer.label == Item.gold_label)
                    .label("gold_correct"),
                )
                .join(Item, Item.id == Answer.item_id)
                .group_by(Answer.taskset_id)
                .subquery()
            )
            rows = await session.execute(
                select(
                    TaskSet.name,
                    TaskSet.title,
                    TaskSet.status,
                    func.coalesce(item_stats.c["items"], 0),
                    func.coalesce(item_stats.c.done, 0),
                    func.coalesce(item_stats.c.gold, 0),
                    func.coalesce(answer_stats.c.answers, 0),
                    func.coalesce(answer_stats.c.gold_answers, 0),
                    func.coalesce(answer_stats.c.gold_correct, 0),
                )
                .outerjoin(item_stats, item_stats.c.taskset_id == TaskSet.id)
                .outerjoin(answer_stats, answer_stats.c.taskset_id == TaskSet.id)
                .order_by(TaskSet.id)
            )
            return [
                TaskSetProgress(name, title, str(status), *counts)
                for name, title, status, *counts in rows
            ]

    # ------------------------------------------------------------------ workers

    async def join(
        self,
        worker_id: int,
        display_name: str,
        *,
        username: str | None = None,
        language: str | None = None,
        taskset_id: int | None = None,
    ) -> TaskSetView | None:
        """Register (or refresh) a worker and put them on a task set.

        Without ``taskset_id`` the worker keeps their current set, or gets the only active one.
        Returns the set they are on, or None when there is no active set to join.
        """
        now = self.clock()
        async with self.sessions.begin() as session:
            worker = await session.get(Worker, worker_id)
            if worker is None:
                worker = Worker(
                    id=worker_id,
                    display_name=display_name,
                    username=username,
                    language=language,
                    status=WorkerStatus.ACTIVE,
                    joined_at=now,
                )
                session.add(worker)
            else:
                worker.display_name, worker.username = display_name, username
                if worker.status == WorkerStatus.INACTIVE:
                    worker.status = WorkerStatus.ACTIVE  # they came back
            if taskset_id is None:
                taskset_id = worker.current_taskset_id or await self._only_active(session)
            if taskset_id is None:
                return None
            taskset = await session.get(TaskSet, taskset_id)
            if taskset is None or taskset.status != TaskSetStatus.ACTIVE:
                return None
            worker.current_taskset_id = taskset_id
            await session.flush()
            if await session.get(Membership, (worker_id, taskset_id)) is None:
                session.add(
                    Membership(
                        worker_id=worker_id,
                        taskset_id=taskset_id,
                        status=MembershipStatus.QUALIFYING
                        if taskset.qualification
                        else MembershipStatus.ACTIVE,
                        joined_at=now,
                    )
                )
        return await self.view(taskset_id)

    async def _only_active(self, session: AsyncSession) -> int | None:
        ids = list(
            await session.scalars(
                select(TaskSet.id).where(TaskSet.status == TaskSetStatus.ACTIVE).limit(2)
            )
        )
        return ids[0] if len(ids) == 1 else None

    async def mark_inactive(self, worker_id: int) -> None:
        """The worker blocked the bot: stop sending, free their lease at once."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(Worker).where(Worker.id == worker_id).values(status=WorkerStatus.INACTIVE)
            )
            await self._expire(session, Assignment.worker_id == worker_id)

    async def reinstate(self, worker_id: int, taskset_name: str | None = None) -> int:
        """Lift a suspension (all sets, or one); returns how many memberships changed."""
        async with self.sessions.begin() as session:
            query = update(Membership).where(
                Membership.worker_id == worker_id,
                Membership.status.in_([MembershipStatus.SUSPENDED, MembershipStatus.FAILED]),
            )
            if taskset_name is not None:
                query = query.where(
                    Membership.taskset_id
                    == select(TaskSet.id).where(TaskSet.name == taskset_name).scalar_subquery()
                )
            result = await session.execute(
                query.values(status=MembershipStatus.ACTIVE, status_reason="reinstated")
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def current_taskset(self, worker_id: int) -> TaskSetView | None:
        async with self.sessions() as session:
            taskset_id = await session.scalar(
                select(Worker.current_taskset_id).where(Worker.id == worker_id)
            )
        return await self.view(taskset_id) if taskset_id is not None else None

    async def dispute(self, answer_id: int, worker_id: int) -> int | None:
        """Record a worker's dispute of their own gold answer; returns the dispute id."""
        async with self.sessions.begin() as session:
            owned = await session.scalar(
                select(Answer.id)
                .join(Item, Item.id == Answer.item_id)
                .where(Answer.id == answer_id, Answer.worker_id == worker_id, Item.is_gold)
            )
            if owned is None:
                return None
            existing = await session.scalar(
                select(Dispute.id).where(Dispute.answer_id == answer_id)
            )
            if existing is not None:
                return existing
            dispute = Dispute(answer_id=answer_id, created_at=self.clock())
            session.add(dispute)
            await session.flush()
            return dispute.id

    async def set_dispute_reason(self, dispute_id: int, worker_id: int, reason: str) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Dispute)
                .where(
                    Dispute.id == dispute_id,
                    Dispute.answer_id.in_(select(Answer.id).where(Answer.worker_id == worker_id)),
                )
                .values(reason=reason[:2000])
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ the hot path

    async def next_item_for(self, worker_id: int) -> NextItem:
        """The item to show this worker now: their live lease if they have one, else a new one."""
        now = self.clock()
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    select(
                        Worker.current_taskset_id,
                        Worker.status,
                        Membership.status,
                        Membership.status_reason,
                    )
                    .outerjoin(
                        Membership,
                        and_(
                            Membership.worker_id == Worker.id,
                            Membership.taskset_id == Worker.current_taskset_id,
                        ),
                    )
                    .where(Worker.id == worker_id)
                )
            ).one_or_none()
            if row is None:
                return NoItem(NoItemReason.NO_TASKSET)
            taskset_id, worker_status, membership_status, reason = row
            if taskset_id is None or membership_status is None:
                return NoItem(NoItemReason.NO_TASKSET)  # never joined, or the set is gone
            view = await self.view(taskset_id)
            if worker_status == WorkerStatus.BANNED:
                return NoItem(NoItemReason.BLOCKED, view)
            live = (
                await session.execute(
                    select(Assignment.token, Item.text, Item.media_kind, Item.media_ref)
                    .join(Item, Item.id == Assignment.item_id)
                    .where(
                        Assignment.worker_id == worker_id,
                        Assignment.taskset_id == taskset_id,
                        Assignment.state == AssignmentState.LEASED,
                        Assignment.expires_at > now,
                    )
                    .limit(1)
                )
            ).one_or_none()
            if live is not None:
                answered = await self._answered_count(session, worker_id, taskset_id)
                return ServedItem(live[0], view, live[1], live[2], live[3], answered + 1)
            answered = await self._answered_count(session, worker_id, taskset_id)
            return await self._lease_next(
                session, worker_id, view, MembershipStatus(membership_status), reason, answered, now
            )

    async def _answered_count(self, session: AsyncSession, worker_id: int, taskset_id: int) -> int:
        count = await session.scalar(
            select(Membership.answers).where(
                Membership.worker_id == worker_id, Membership.taskset_id == taskset_id
            )
        )
        return count or 0

    async def _lease_next(
        self,
        session: AsyncSession,
        worker_id: int,
        view: TaskSetView,
        status: MembershipStatus,
        reason: str | None,
        answered: int,
        now: datetime,
    ) -> NextItem:
        taskset, _rules = self._rules[view.id]
        if status == MembershipStatus.SUSPENDED:
            return NoItem(NoItemReason.SUSPENDED, view, reason)
        if status == MembershipStatus.FAILED:
            return NoItem(NoItemReason.FAILED_QUALIFICATION, view, reason)
        state = await session.scalar(select(TaskSet.status).where(TaskSet.id == view.id))
        if state != TaskSetStatus.ACTIVE:
            return NoItem(NoItemReason.NOT_ACTIVE, view)
        params = {"taskset_id": view.id, "worker_id": worker_id}
        row: LeasedRow | None = None
        if status == MembershipStatus.QUALIFYING:
            row = await self._lease_gold(session, params)
            if row is None:
                # Fewer gold items than the qualification asks for: judge on what was seen.
                return await self._finish_qualification_early(session, worker_id, view, now)
        else:
            if taskset.gold_ratio and self.rng.random() < taskset.gold_ratio:
                row = await self._lease_gold(session, params)
            if row is None:
                row = await self._lease_regular(session, params)
        if row is None:
            return NoItem(NoItemReason.ALL_DONE, view)
        token = secrets.token_urlsafe(12)
        await session.execute(
            insert(Assignment).values(
                token=token,
                worker_id=worker_id,
                item_id=row.item_id,
                taskset_id=view.id,
                state=AssignmentState.LEASED,
                served_at=now,
                expires_at=now + self.lease,
            )
        )
        return ServedItem(token, view, row.text, row.media_kind, row.media_ref, answered + 1)

    async def _lease_regular(
        self, session: AsyncSession, params: dict[str, int]
    ) -> LeasedRow | None:
        for _ in range(3):
            row = (await session.execute(self.next_item_query, params)).one_or_none()
            if row is None:
                return None
            taken = await session.execute(
                update(Item)
                .where(Item.id == row[0], Item.open.is_(True))
                .values(
                    in_flight=Item.in_flight + 1,
                    open=Item.answer_count + Item.in_flight + 1 < Item.needed,
                )
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                return LeasedRow(*row)
        return None

    async def _lease_gold(self, session: AsyncSession, params: dict[str, int]) -> LeasedRow | None:
        # Gold items have no quota: they are never "taken", only never shown twice to one worker.
        last = await session.scalar(
            select(func.max(Item.position)).where(
                Item.taskset_id == params["taskset_id"], Item.is_gold.is_(True)
            )
        )
        if last is None:
            return None
        start = self.rng.randint(0, last)
        for query in (self._pick_gold_after, self._pick_gold_before):
            row = (await session.execute(query, {**params, "start": start})).one_or_none()
            if row is not None:
                return LeasedRow(*row)
        return None

    async def _finish_qualification_early(
        self, session: AsyncSession, worker_id: int, view: TaskSetView, now: datetime
    ) -> NextItem:
        membership = await session.get_one(Membership, (worker_id, view.id))
        change = self._judge_qualification(membership, force=True)
        if change is not None and change.status == MembershipStatus.FAILED:
            return NoItem(NoItemReason.FAILED_QUALIFICATION, view, change.reason)
        return await self._lease_next(
            session, worker_id, view, membership.status, None, membership.answers, now
        )

    def _judge_qualification(
        self, membership: Membership, *, force: bool = False
    ) -> StatusChange | None:
        taskset, _rules = self._rules[membership.taskset_id]
        qualification = taskset.qualification or {}
        needed = int(qualification.get("items", 0))
        if membership.status != MembershipStatus.QUALIFYING:
            return None
        if membership.gold_answers < needed and not force:
            return None
        accuracy = (
            membership.gold_correct / membership.gold_answers if membership.gold_answers else 1.0
        )
        if accuracy >= float(qualification.get("min_accuracy", 0.0)):
            membership.status = MembershipStatus.ACTIVE
            membership.status_reason = f"passed the qualification with {accuracy:.0%}"
        else:
            membership.status = MembershipStatus.FAILED
            membership.status_reason = (
                f"{membership.gold_correct} of {membership.gold_answers} training questions right, "
                f"{float(qualification['min_accuracy']):.0%} needed"
            )
        return StatusChange(membership.status, membership.status_reason)

    async def record_answer(
        self, token: str, worker_id: int, choice: Choice, *, message_id: int | None = None
    ) -> AnswerOutcome:
        """Store one answer for the lease named by ``token`` and lease the next item, atomically.

        Idempotent on the token: a double tap, a redelivered update or a forged button changes
        nothing and says why.
        """
        now = self.clock()
        async with self.sessions.begin() as session:
            query = (
                select(Assignment, Item.is_gold, Item.gold_label, Item.explanation)
                .join(Item, Item.id == Assignment.item_id)
                .where(Assignment.token == token)
            )
            if not is_sqlite(self.engine.url):
                query = query.with_for_update(of=Assignment)
            found = (await session.execute(query)).one_or_none()
            if found is None:
                return Rejected(Rejection.FORGED)
            assignment, is_gold, gold_label, explanation = found
            if assignment.worker_id != worker_id:
                return Rejected(Rejection.FOREIGN)
            if assignment.state == AssignmentState.ANSWERED:
                return Rejected(Rejection.DUPLICATE)
            view = await self.view(assignment.taskset_id)
            if isinstance(choice, int) and not 0 <= choice < len(view.labels):
                return Rejected(Rejection.FORGED)
            if assignment.state == AssignmentState.EXPIRED and not is_gold:
                # The sweep gave the slot back; take the late answer only if a slot is still free.
                reopened = await session.execute(
                    update(Item)
                    .where(Item.id == assignment.item_id, Item.open.is_(True))
                    .values(
                        in_flight=Item.in_flight + 1,
                        open=Item.answer_count + Item.in_flight + 1 < Item.needed,
                    )
                )
                if not reopened.rowcount:  # type: ignore[attr-defined]
                    return Rejected(Rejection.EXPIRED)

            if isinstance(choice, int):
                label, kind, chosen = (
                    view.labels[choice].value,
                    AnswerKind.LABEL,
                    view.labels[choice].text,
                )
            else:
                label, kind, chosen = None, AnswerKind(choice), SKIPPED_TEXT[choice]
            try:
                answer_id = await session.scalar(
                    insert(Answer)
                    .values(
                        assignment_id=assignment.id,
                        worker_id=worker_id,
                        item_id=assignment.item_id,
                        taskset_id=assignment.taskset_id,
                        kind=kind,
                        label=label,
                        seconds=max(0.0, (now - as_utc(assignment.served_at)).total_seconds()),
                        created_at=now,
                    )
                    .returning(Answer.id)
                )
            except IntegrityError:
                # Only reachable when two leases of one (worker, item) raced on PostgreSQL.
                return Rejected(Rejection.DUPLICATE)
            assignment.state = AssignmentState.ANSWERED
            if message_id is not None:
                assignment.message_id = message_id

            counted = label is not None
            if not is_gold:
                await self._settle_item(session, assignment.item_id, view, counted)
            elif counted:  # gold has no quota to free; its count is for the coordinators' view
                await session.execute(
                    update(Item)
                    .where(Item.id == assignment.item_id)
                    .values(answer_count=Item.answer_count + 1)
                )
            if counted and view.reward_minor:
                await session.execute(
                    insert(LedgerEntry).values(
                        worker_id=worker_id,
                        taskset_id=view.id,
                        answer_id=answer_id,
                        kind="reward",
                        amount_minor=view.reward_minor,
                        currency=view.currency,
                        created_at=now,
                    )
                )
            membership = await session.get_one(Membership, (worker_id, assignment.taskset_id))
            membership.answers += 1
            gold: GoldFeedback | None = None
            if is_gold and counted:
                correct = label == gold_label
                membership.gold_answers += 1
                membership.gold_correct += int(correct)
                gold = GoldFeedback(
                    correct=correct,
                    gold_label=self._label_text(view, gold_label),
                    explanation=explanation,
                    answer_id=int(answer_id or 0),
                    training=membership.status == MembershipStatus.QUALIFYING,
                )
            change = self._judge_qualification(membership) or await self._check_rules(
                session, membership, gold is not None
            )
            await session.flush()
            following = await self._lease_next(
                session,
                worker_id,
                view,
                membership.status,
                membership.status_reason,
                membership.answers,
                now,
            )
            return Recorded(chosen, gold, change, following)

    @staticmethod
    def _label_text(view: TaskSetView, value: str | None) -> str:
        return next((lab.text for lab in view.labels if lab.value == value), value or "")

    async def _settle_item(
        self, session: AsyncSession, item_id: int, view: TaskSetView, counted: bool
    ) -> None:
        """Free the lease slot, count the answer, and grow the overlap if the item is contested."""
        added = 1 if counted else 0
        taskset, _rules = self._rules[view.id]
        if not counted or taskset.overlap_confidence is None:
            await session.execute(
                update(Item)
                .where(Item.id == item_id)
                .values(
                    answer_count=Item.answer_count + added,
                    in_flight=Item.in_flight - 1,
                    open=Item.answer_count + added + Item.in_flight - 1 < Item.needed,
                )
            )
            return
        item = await session.get_one(Item, item_id)
        item.answer_count += 1
        item.in_flight -= 1
        votes = await session.execute(
            select(Answer.label, Membership.gold_correct, Membership.gold_answers)
            .join(
                Membership,
                and_(
                    Membership.worker_id == Answer.worker_id,
                    Membership.taskset_id == Answer.taskset_id,
                ),
            )
            .where(Answer.item_id == item_id, Answer.kind == AnswerKind.LABEL)
        )
        index = {lab.value: k for k, lab in enumerate(view.labels)}
        _best, item.confidence = item_posterior(
            [(index[lab], smoothed_accuracy(c, n)) for lab, c, n in votes if lab in index],
            len(view.labels),
        )
        if (
            item.answer_count >= item.needed
            and item.confidence < taskset.overlap_confidence
            and item.needed < taskset.overlap_max
        ):
            item.needed += 1
        item.open = item.answer_count + item.in_flight < item.needed

    async def _check_rules(
        self, session: AsyncSession, membership: Membership, after_gold: bool
    ) -> StatusChange | None:
        if membership.status != MembershipStatus.ACTIVE:
            return None
        if not after_gold and membership.answers % RULE_CHECK_EVERY:
            return None
        _taskset, rules = self._rules[membership.taskset_id]
        recent = (
            await session.execute(
                select(Answer.seconds, Answer.label)
                .where(
                    Answer.taskset_id == membership.taskset_id,
                    Answer.worker_id == membership.worker_id,
                )
                .order_by(Answer.id.desc())
                .limit(max(rules.dominant_window, rules.min_answers_for_speed))
            )
        ).all()
        crowd = await session.scalars(
            select(Answer.label)
            .where(Answer.taskset_id == membership.taskset_id, Answer.label.is_not(None))
            .order_by(Answer.id.desc())
            .limit(CROWD_SAMPLE)
        )
        record = WorkerRecord(
            gold_answers=membership.gold_answers,
            gold_correct=membership.gold_correct,
            recent_seconds=[seconds for seconds, _ in recent],
            recent_labels=[label for _, label in recent if label is not None],
            crowd_labels=[label for label in crowd if label is not None],
        )
        reason = suspension_reason(record, rules)
        if reason is None:
            return None
        membership.status = MembershipStatus.SUSPENDED
        membership.status_reason = reason
        return StatusChange(MembershipStatus.SUSPENDED, reason)

    # ------------------------------------------------------------------ leases

    async def expire_leases(self) -> int:
        """Give the items of leases that ran out back to the pool; returns how many expired."""
        async with self.sessions.begin() as session:
            return await self._expire(session, Assignment.expires_at <= self.clock())

    async def _expire(self, session: AsyncSession, condition: Any) -> int:
        expired = await session.execute(
            update(Assignment)
            .where(Assignment.state == AssignmentState.LEASED, condition)
            .values(state=AssignmentState.EXPIRED)
            .returning(Assignment.item_id)
        )
        item_ids = [item_id for (item_id,) in expired]
        for item_id in item_ids:
            await session.execute(
                update(Item)
                .where(Item.id == item_id, Item.is_gold.is_(False))
                .values(
                    in_flight=Item.in_flight - 1,
                    open=Item.answer_count + Item.in_flight - 1 < Item.needed,
                )
            )
        return len(item_ids)

    # ------------------------------------------------------------------- reads

    async def answers_for_export(self, taskset_id: int) -> list[StoredAnswer]:
        """Every answer of a set with its item, oldest first (for raw export and aggregation)."""
        async with self.sessions() as session:
            result = await session.execute(
                select(
                    Item.external_id,
                    Answer.worker_id,
                    Answer.kind,
                    Answer.label,
                    Answer.seconds,
                    Answer.created_at,
                    Membership.status,
                )
                .join(Item, Item.id == Answer.item_id)
                .join(
                    Membership,
                    and_(
                        Membership.worker_id == Answer.worker_id,
                        Membership.taskset_id == Answer.taskset_id,
                    ),
                )
                .where(Answer.taskset_id == taskset_id)
                .order_by(Answer.id)
            )
            return [StoredAnswer(*row) for row in result]

    async def worker_scores(self, taskset_id: int) -> list[WorkerScore]:
        """Per worker in a set: gold score, speed, label mix, standing and earnings."""
        async with self.sessions() as session:
            members = (
                await session.execute(
                    select(Membership, Worker.display_name)
                    .join(Worker, Worker.id == Membership.worker_id)
                    .where(Membership.taskset_id == taskset_id)
                    .order_by(Membership.joined_at, Membership.worker_id)
                )
            ).all()
            answers = await session.execute(
                select(Answer.worker_id, Answer.label, Answer.seconds).where(
                    Answer.taskset_id == taskset_id
                )
            )
            earned = await session.execute(
                select(LedgerEntry.worker_id, func.sum(LedgerEntry.amount_minor))
                .where(LedgerEntry.taskset_id == taskset_id)
                .group_by(LedgerEntry.worker_id)
            )
            earnings = {worker_id: int(total) for worker_id, total in earned}
        seconds: dict[int, list[float]] = {}
        labels: dict[int, Counter[str]] = {}
        for worker_id, label, taken in answers:
            seconds.setdefault(worker_id, []).append(taken)
            if label is not None:
                labels.setdefault(worker_id, Counter())[label] += 1
        return [
            WorkerScore(
                worker_id=member.worker_id,
                name=name,
                status=member.status,
                reason=member.status_reason,
                answers=member.answers,
                gold_answers=member.gold_answers,
                gold_correct=member.gold_correct,
                gold_accuracy=smoothed_accuracy(member.gold_correct, member.gold_answers),
                median_seconds=median(seconds[member.worker_id])
                if member.worker_id in seconds
                else None,
                labels=dict(labels.get(member.worker_id, {})),
                earned_minor=int(earnings.get(member.worker_id, 0)),
            )
            for member, name in members
        ]

    async def items_for_export(self, taskset_id: int) -> list[StoredItem]:
        async with self.sessions() as session:
            result = await session.execute(
                select(Item.external_id, Item.text, Item.gold_label)
                .where(Item.taskset_id == taskset_id)
                .order_by(Item.position)
            )
            return [StoredItem(*row) for row in result]
