"""Units of work the bot needs. Every operation that must be atomic is one transaction here."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import BigInteger, and_, case, cast, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.broadcasts import BroadcastQueue
from storage.coordination import Coordination
from storage.engine import session_factory
from storage.labeling import Choice, Labeling
from storage.ledger import Ledger, on_reinstated
from storage.loading import store_taskset
from storage.models import (
    COUNTED_KINDS,
    COUNTED_KINDS_SQL,
    Answer,
    AnswerKind,
    Dispute,
    Item,
    LedgerEntry,
    Membership,
    MembershipStatus,
    TaskSet,
    TaskSetStatus,
    Worker,
    WorkerStatus,
    live_answer,
)
from storage.privacy import Privacy
from storage.results import (
    AnswerOutcome,
    Earnings,
    EditOutcome,
    NextItem,
    ReplyOutcome,
    StoredAnswer,
    StoredItem,
    TaskSetProgress,
    TaskSetView,
    UndoOutcome,
    WorkerScore,
)
from storage.reviews import Reviews
from storage.session_tx import SessionTransaction
from storage.standing import Standing
from storage.statements.ledger import LEDGER_CHECKS
from storage.statements.shapes import read_row
from storage.statements.tallies import TALLY_CHECKS
from tasksets.quality import smoothed_accuracy
from tasksets.replies import Reply
from tasksets.spec import LoadableTaskSet

DEFAULT_LEASE = timedelta(minutes=10)
# Each query counts rows that break one bookkeeping invariant (the counters kept by the hot path
# must equal what the rows say); used by tests and the load benchmark.
CONSISTENCY_CHECKS = {
    "items over their overlap": (
        "SELECT count(*) FROM items WHERE NOT is_gold AND answer_count + in_flight > needed"
    ),
    "items whose answer_count differs from their answers": (
        "SELECT count(*) FROM items i WHERE i.answer_count <> "
        f"(SELECT count(*) FROM answers a WHERE a.item_id = i.id AND a.kind IN {COUNTED_KINDS_SQL} "
        "AND a.withdrawn_at IS NULL)"
    ),
    "items whose in_flight differs from their live leases": (
        "SELECT count(*) FROM items i WHERE NOT i.is_gold AND i.in_flight <> "
        "(SELECT count(*) FROM assignments s WHERE s.item_id = i.id AND s.state = 'leased')"
    ),
    "answered leases without exactly one answer": (
        "SELECT count(*) FROM assignments s WHERE (s.state = 'answered') <> "
        "EXISTS (SELECT 1 FROM answers a WHERE a.assignment_id = s.id "
        "AND a.withdrawn_at IS NULL)"
    ),
    # An undone answer's reward is cancelled under an 'undone' adjustment, and given back under
    # an 'answered_again' one when the worker answers the item again.
    "ledger sum minus the rewards of counted answers": (
        "SELECT (SELECT coalesce(sum(amount_minor), 0) FROM ledger_entries WHERE kind = 'reward' "
        "OR adjustment_id IN (SELECT id FROM ledger_adjustments "
        "WHERE kind IN ('undone', 'answered_again')))"
        " - (SELECT coalesce(sum(t.reward_minor), 0) FROM answers a "
        f"JOIN tasksets t ON t.id = a.taskset_id WHERE a.kind IN {COUNTED_KINDS_SQL} "
        "AND a.withdrawn_at IS NULL)"
    ),
    **LEDGER_CHECKS,
    **TALLY_CHECKS,
}


def sum_minor(total: Any) -> Any:
    """A sum of minor units as an integer (PostgreSQL sums BIGINT as NUMERIC), 0 for no rows."""
    return cast(func.coalesce(total, 0), BigInteger)


def utcnow() -> datetime:
    return datetime.now(UTC)


class LabelStore:
    """The storage service the handlers call; created once in ``post_init``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        pseudonym_secret: str | None = None,
    ) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        self.clock = clock
        self.labeling = Labeling(engine, lease=lease, clock=clock, rng=rng or random.Random())
        # The review stream: verdicts, the reviewer level, the stream's state.
        self.reviews = Reviews(self.labeling)
        # Money (balances, bonuses, payouts), standing (/me, boards) and personal data.
        self.ledger = Ledger(self.sessions, clock)
        self.standing = Standing(self.sessions, clock, pseudonym_secret=pseudonym_secret)
        self.privacy = Privacy(self.sessions, self.labeling, clock)
        # The coordinators' operations (drafts, status, disputes, ...) and the broadcast queue.
        self.broadcasts = BroadcastQueue(self.sessions, clock)
        self.coordination = Coordination(self, self.broadcasts)

    # ----------------------------------------------------------------- task sets

    async def load_taskset(
        self,
        taskset: LoadableTaskSet,
        *,
        status: TaskSetStatus = TaskSetStatus.ACTIVE,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Store a task set and its items in one transaction; returns its id (see
        `storage.loading.store_taskset`)."""
        return await store_taskset(
            self.sessions, taskset, now=self.clock(), status=status, on_progress=on_progress
        )

    async def close(self) -> None:
        await self.labeling.close()
        await self.engine.dispose()

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
        """Rendering data of a task set (cached: it never changes after loading)."""
        return await self.labeling.view(taskset_id)

    async def set_taskset_status(self, name: str, status: TaskSetStatus) -> bool:
        """Change a set's status; closing it grants its accuracy bonuses (once per worker)."""
        async with self.sessions.begin() as session:
            taskset_id = await session.scalar(
                update(TaskSet)
                .where(TaskSet.name == name)
                .values(status=status)
                .returning(TaskSet.id)
            )
        if taskset_id is not None and status == TaskSetStatus.CLOSED:
            await self.ledger.grant_bonuses(taskset_id)
        return taskset_id is not None

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
                    func.count().filter(Item.set_aside_reason.is_not(None)).label("set_aside"),
                )
                .group_by(Item.taskset_id)
                .subquery()
            )
            answer_stats = (
                select(
                    Answer.taskset_id,
                    func.count().filter(Answer.kind.in_(COUNTED_KINDS)).label("answers"),
                    func.count()
                    .filter(Item.is_gold.is_(True), Answer.kind.in_(COUNTED_KINDS))
                    .label("gold_answers"),
                    func.count()
                    .filter(Item.is_gold.is_(True), Answer.label == Item.gold_label)
                    .label("gold_correct"),
                )
                .join(Item, Item.id == Answer.item_id)
                .where(live_answer())
                .group_by(Answer.taskset_id)
                .subquery()
            )
            # A typed gold answer was judged by its word error rate when it came, which SQL
            # cannot redo: its sets count what the workers' standings counted then.
            judged = (
                select(
                    Membership.taskset_id, func.sum(Membership.gold_correct).label("gold_correct")
                )
                .group_by(Membership.taskset_id)
                .subquery()
            )
            gold_correct = case(
                (TaskSet.answer == "labels", answer_stats.c.gold_correct),
                else_=judged.c.gold_correct,
            )
            rows = await session.execute(
                select(
                    TaskSet.id.label("taskset_id"),
                    TaskSet.name,
                    TaskSet.title,
                    TaskSet.status,
                    func.coalesce(item_stats.c["items"], 0).label("items"),
                    func.coalesce(item_stats.c.done, 0).label("items_done"),
                    func.coalesce(item_stats.c.gold, 0).label("gold_items"),
                    func.coalesce(item_stats.c.set_aside, 0).label("set_aside"),
                    func.coalesce(answer_stats.c.answers, 0).label("answers"),
                    func.coalesce(answer_stats.c.gold_answers, 0).label("gold_answers"),
                    func.coalesce(gold_correct, 0).label("gold_correct"),
                )
                .outerjoin(item_stats, item_stats.c.taskset_id == TaskSet.id)
                .outerjoin(answer_stats, answer_stats.c.taskset_id == TaskSet.id)
                .outerjoin(judged, judged.c.taskset_id == TaskSet.id)
                .order_by(TaskSet.id)
            )
            return [read_row(TaskSetProgress, row) for row in rows]

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
            previous = worker.current_taskset_id
            if taskset_id is None:
                taskset_id = previous or await self._only_active(session)
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
        if previous is not None and previous != taskset_id:
            # Moving to another set: the item left on screen in the old one goes back at once.
            await self.labeling.release_leases(worker_id, previous)
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
        await self.labeling.mark_inactive(worker_id)

    async def reinstate(self, worker_id: int, taskset_name: str | None = None) -> int:
        """Lift a suspension (all sets, or one); returns how many memberships changed.

        In the same transaction the worker rejoins those sets' leaderboards and every reversal
        of their pending money there is restored (``storage.ledger.on_reinstated``).
        """
        async with self.sessions.begin() as session:
            query = select(Membership.taskset_id).where(
                Membership.worker_id == worker_id,
                Membership.status.in_([MembershipStatus.SUSPENDED, MembershipStatus.FAILED]),
            )
            if taskset_name is not None:
                query = query.where(
                    Membership.taskset_id
                    == select(TaskSet.id).where(TaskSet.name == taskset_name).scalar_subquery()
                )
            taskset_ids = list(await session.scalars(query.with_for_update()))
            if not taskset_ids:
                return 0
            await session.execute(
                update(Membership)
                .where(Membership.worker_id == worker_id, Membership.taskset_id.in_(taskset_ids))
                .values(status=MembershipStatus.ACTIVE, status_reason="reinstated")
            )
            now = self.clock()
            for taskset_id in taskset_ids:
                await on_reinstated(SessionTransaction(session), worker_id, taskset_id, now)
            return len(taskset_ids)

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
        return await self.labeling.next_item_for(worker_id)

    async def record_answer(
        self, token: str, worker_id: int, choice: Choice, *, message_id: int | None = None
    ) -> AnswerOutcome:
        return await self.labeling.record_answer(token, worker_id, choice, message_id=message_id)

    async def record_reply(
        self, worker_id: int, reply_message_id: int, reply: Reply
    ) -> ReplyOutcome:
        return await self.labeling.record_reply(worker_id, reply_message_id, reply)

    async def edit_reply(self, worker_id: int, reply_message_id: int, text: str) -> EditOutcome:
        return await self.labeling.edit_reply(worker_id, reply_message_id, text)

    async def note_item_message(self, token: str, message_id: int) -> None:
        await self.labeling.note_item_message(token, message_id)

    async def undo_answer(self, answer_id: int, token: str, worker_id: int) -> UndoOutcome:
        return await self.labeling.undo_answer(answer_id, token, worker_id)

    async def set_unsure_reason(self, answer_id: int, worker_id: int, reason: str) -> bool:
        return await self.labeling.set_unsure_reason(answer_id, worker_id, reason)

    async def expire_leases(self) -> int:
        return await self.labeling.expire_leases()

    async def set_aside(self, token: str, reason: str) -> bool:
        return await self.labeling.set_aside(token, reason)

    # ------------------------------------------------------------------- reads

    async def consistency_violations(self) -> dict[str, int]:
        """The bookkeeping invariants, recounted from the rows; every value should be 0."""
        async with self.engine.connect() as conn:
            return {
                name: int(await conn.scalar(text(sql)) or 0)
                for name, sql in CONSISTENCY_CHECKS.items()
            }

    async def answers_for_export(
        self, taskset_id: int, *, reviewed: bool = True
    ) -> list[StoredAnswer]:
        """Every answer of a set with its item, oldest first (for raw export and aggregation).

        With ``reviewed``, an answer that reviews settled wrong gives way to its reviewer's
        correction: the right label, answered from the reviewer's seat, so that weighted
        aggregation trusts it as much as that reviewer."""
        corrections = await self.reviews.corrections(taskset_id) if reviewed else {}
        async with self.sessions() as session:
            result = await session.execute(
                select(
                    Answer.id,
                    Item.external_id.label("item_id"),
                    Answer.worker_id,
                    Answer.kind,
                    Answer.label,
                    Answer.seconds,
                    Answer.created_at,
                    Membership.status.label("membership"),
                    Answer.text,
                )
                .join(Item, Item.id == Answer.item_id)
                .join(
                    Membership,
                    and_(
                        Membership.worker_id == Answer.worker_id,
                        Membership.taskset_id == Answer.taskset_id,
                    ),
                )
                .where(Answer.taskset_id == taskset_id, live_answer())
                .order_by(Answer.id)
            )
            answers = []
            for row in result:
                if row.id not in corrections:
                    answers.append(read_row(StoredAnswer, row))
                elif (fix := corrections[row.id]) is not None:
                    answers.append(
                        StoredAnswer(
                            item_id=row.item_id,
                            worker_id=fix.reviewer_id,
                            kind=AnswerKind.LABEL,
                            label=fix.label,
                            seconds=0.0,
                            created_at=fix.reviewed_at,
                            membership=fix.membership,
                        )
                    )
            return answers

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
                    Answer.taskset_id == taskset_id, live_answer()
                )
            )
            earned = await session.execute(
                select(
                    LedgerEntry.worker_id,
                    sum_minor(func.sum(LedgerEntry.amount_minor)).label("total"),
                )
                .where(LedgerEntry.taskset_id == taskset_id)
                .group_by(LedgerEntry.worker_id)
            )
            earnings = {row.worker_id: row.total for row in earned}
        seconds: dict[int, list[float]] = {}
        labels: dict[int, Counter[str]] = {}
        for answer in answers:
            seconds.setdefault(answer.worker_id, []).append(answer.seconds)
            if answer.label is not None:
                labels.setdefault(answer.worker_id, Counter())[answer.label] += 1
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

    async def leaderboard(self, taskset_id: int) -> list[WorkerScore]:
        """Workers of a set, best first: active before suspended, then by answers and accuracy."""
        scores = await self.worker_scores(taskset_id)
        return sorted(
            scores,
            key=lambda s: (
                s.status != MembershipStatus.ACTIVE,
                -s.answers,
                -s.gold_accuracy,
                s.worker_id,
            ),
        )

    async def earnings(self, worker_id: int) -> list[Earnings]:
        """A worker's ledger summed per currency: earned, paid out, and the balance due."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    LedgerEntry.currency,
                    sum_minor(
                        func.sum(LedgerEntry.amount_minor).filter(LedgerEntry.amount_minor > 0)
                    ).label("earned_minor"),
                    sum_minor(
                        func.sum(-LedgerEntry.amount_minor).filter(LedgerEntry.kind == "payout")
                    ).label("paid_minor"),
                    sum_minor(func.sum(LedgerEntry.amount_minor)).label("balance_minor"),
                )
                .where(LedgerEntry.worker_id == worker_id)
                .group_by(LedgerEntry.currency)
                .order_by(LedgerEntry.currency)
            )
            return [read_row(Earnings, row) for row in rows]

    async def items_set_aside(self, taskset_id: int) -> list[tuple[str, str]]:
        """(item id, reason) of the items Telegram refused to show, in file order."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Item.external_id, Item.set_aside_reason)
                .where(Item.taskset_id == taskset_id, Item.set_aside_reason.is_not(None))
                .order_by(Item.position)
            )
            return [(row.external_id, row.set_aside_reason) for row in rows]

    async def items_for_export(self, taskset_id: int) -> list[StoredItem]:
        async with self.sessions() as session:
            result = await session.execute(
                select(Item.external_id.label("item_id"), Item.text, Item.gold_label.label("gold"))
                .where(Item.taskset_id == taskset_id)
                .order_by(Item.position)
            )
            return [read_row(StoredItem, row) for row in result]
