"""The labeling hot path: hand out items as leases and record answers, each atomically.

Everything here runs on the database driver (``storage/driver.py``) with Core statements built
once at start-up: no ORM unit of work, no per-tap compilation, and as few round trips as the
invariants allow. A tap is one transaction that checks the lease token, stores the answer, frees
the lease, credits the ledger, updates the worker's standing and leases the next item.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    Insert,
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from storage.driver import Transaction, open_driver
from storage.engine import is_sqlite
from storage.models import (
    Answer,
    AnswerKind,
    Assignment,
    AssignmentState,
    Base,
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

Choice = int | Literal["skip", "unsure"]
SKIPPED_TEXT = {AnswerKind.SKIP: "Skipped", AnswerKind.UNSURE: "Not sure"}
# How often (in a worker's answers) the rules that read recent history run.
RULE_CHECK_EVERY = 5
CROWD_SAMPLE = 1000
LEASE_ATTEMPTS = 3


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a task set hands out work and judges workers; fixed once the set is loaded."""

    gold_ratio: float
    last_gold_position: int | None  # None when the set has no gold items
    qualification_items: int  # 0 when there is no qualification
    qualification_accuracy: float
    overlap_max: int
    overlap_confidence: float | None  # set for dynamic overlap
    reward_minor: int
    currency: str
    rules: QualityRules


@dataclass(frozen=True, slots=True)
class Standing:
    """A worker's membership row as the hot path reads it."""

    status: MembershipStatus
    reason: str | None
    answers: int
    gold_answers: int
    gold_correct: int


class TaskSetCatalog:
    """Rendering data and policy of each task set, cached per process (they never change after
    loading), and loaded inside the caller's transaction so no second connection is ever
    needed in the middle of one (with SQLite's write lock held, it would wait for the first)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[TaskSetView, Policy]] = {}

    def cached(self, taskset_id: int) -> tuple[TaskSetView, Policy] | None:
        return self._entries.get(taskset_id)

    async def get(self, tx: Transaction, taskset_id: int) -> tuple[TaskSetView, Policy]:
        entry = self._entries.get(taskset_id)
        if entry is None:
            row = await tx.first(TASKSET, {"taskset": taskset_id})
            if row is None:
                raise LookupError(f"no task set with id {taskset_id}")
            last_gold = await tx.value(LAST_GOLD_POSITION, {"taskset": taskset_id})
            qualification = row.qualification or {}
            view = TaskSetView(
                id=row.id,
                name=row.name,
                title=row.title,
                instructions=row.instructions,
                question=row.question,
                labels=tuple(LabelOption(lab["value"], lab["text"]) for lab in row.labels),
                reward_minor=row.reward_minor,
                currency=row.currency,
            )
            policy = Policy(
                gold_ratio=row.gold_ratio,
                last_gold_position=last_gold,
                qualification_items=int(qualification.get("items", 0)),
                qualification_accuracy=float(qualification.get("min_accuracy", 0.0)),
                overlap_max=row.overlap_max,
                overlap_confidence=row.overlap_confidence,
                reward_minor=row.reward_minor,
                currency=row.currency,
                rules=QualityRules.model_validate(row.quality),
            )
            entry = self._entries[taskset_id] = (view, policy)
        return entry


# ---------------------------------------------------------------- statements (built once)

ITEM_CONTENT = (Item.id, Item.text, Item.media_kind, Item.media_ref)
TASKSET = select(TaskSet.__table__).where(TaskSet.id == bindparam("taskset"))
LAST_GOLD_POSITION = select(func.max(Item.position)).where(
    Item.taskset_id == bindparam("taskset"), Item.is_gold.is_(True)
)


def not_given_to_worker() -> Any:
    return ~exists().where(
        Assignment.worker_id == bindparam("worker"), Assignment.item_id == Item.id
    )


def open_slot_values() -> dict[str, Any]:
    """Take one lease slot; ``open`` follows the counters in the same statement."""
    return {
        "in_flight": Item.in_flight + 1,
        "open": Item.answer_count + Item.in_flight + 1 < Item.needed,
    }


def pick_regular_query(*, lock: bool) -> Any:
    """The next open item for a worker: started items first, then file order.

    It walks ``ix_items_pick`` in order and stops at the first item the worker has not been
    given, so its cost depends on the worker's history, not on the size of the set.
    """
    query = (
        select(Item.id)
        .where(
            Item.taskset_id == bindparam("taskset"),
            Item.is_gold.is_(False),
            Item.open.is_(True),
            not_given_to_worker(),
        )
        .order_by(Item.answer_count.desc(), Item.position)
        .limit(1)
    )
    # Two processes never take the same row: the second skips it and takes the next one.
    return query.with_for_update(skip_locked=True) if lock else query


def lease_regular_statement(pick: Any) -> Update:
    """Pick and take a slot in one round trip; no row means nothing left (or a lost race)."""
    return (
        update(Item)
        .where(Item.id == pick.scalar_subquery(), Item.open.is_(True))
        .values(open_slot_values())
        .returning(*ITEM_CONTENT)
    )


def pick_gold_query(*, after: bool) -> Any:
    """An unseen gold item from a random starting position (wrapping around once)."""
    start = bindparam("start", type_=Item.position.type)
    return (
        select(*ITEM_CONTENT)
        .where(
            Item.taskset_id == bindparam("taskset"),
            Item.is_gold.is_(True),
            Item.position >= start if after else Item.position < start,
            not_given_to_worker(),
        )
        .order_by(Item.position)
        .limit(1)
    )


WORKER_STATE = (
    select(
        Worker.current_taskset_id,
        Worker.status.label("worker_status"),
        Membership.status,
        Membership.status_reason,
        Membership.answers,
        Membership.gold_answers,
        Membership.gold_correct,
        TaskSet.status.label("taskset_status"),
    )
    .select_from(Worker)
    .outerjoin(
        Membership,
        and_(
            Membership.worker_id == Worker.id,
            Membership.taskset_id == Worker.current_taskset_id,
        ),
    )
    .outerjoin(TaskSet, TaskSet.id == Worker.current_taskset_id)
    .where(Worker.id == bindparam("worker"))
)

LIVE_LEASE = (
    select(Assignment.token, Item.text, Item.media_kind, Item.media_ref)
    .join(Item, Item.id == Assignment.item_id)
    .where(
        Assignment.worker_id == bindparam("worker"),
        Assignment.taskset_id == bindparam("taskset"),
        Assignment.state == AssignmentState.LEASED,
        Assignment.expires_at > bindparam("now"),
    )
    .limit(1)
)


def claim_query(*, lock: bool) -> Any:
    query = (
        select(
            Assignment.id,
            Assignment.worker_id,
            Assignment.item_id,
            Assignment.taskset_id,
            Assignment.state,
            Assignment.served_at,
            Item.is_gold,
            Item.gold_label,
            Item.explanation,
            TaskSet.status.label("taskset_status"),
            Answer.kind.label("answer_kind"),
            Answer.label.label("answer_label"),
            Answer.created_at.label("answered_at"),
        )
        .join(Item, Item.id == Assignment.item_id)
        .join(TaskSet, TaskSet.id == Assignment.taskset_id)
        .outerjoin(Answer, Answer.assignment_id == Assignment.id)
        .where(Assignment.token == bindparam("token"))
    )
    # The row lock serialises two taps on one button across processes (SQLite: BEGIN IMMEDIATE).
    return query.with_for_update(of=Assignment) if lock else query


STANDING_AFTER_ANSWER = (
    update(Membership)
    .where(
        Membership.worker_id == bindparam("worker_id"),
        Membership.taskset_id == bindparam("taskset_id"),
    )
    .values(
        answers=Membership.answers + 1,
        gold_answers=Membership.gold_answers
        + bindparam("gold", type_=Membership.gold_answers.type),
        gold_correct=Membership.gold_correct
        + bindparam("correct", type_=Membership.gold_correct.type),
    )
    .returning(
        Membership.status,
        Membership.status_reason,
        Membership.answers,
        Membership.gold_answers,
        Membership.gold_correct,
    )
)


def chosen_text(view: TaskSetView, kind: AnswerKind, label: str | None) -> str:
    """What the worker tapped, as the button said it."""
    if kind != AnswerKind.LABEL:
        return SKIPPED_TEXT[kind]
    return next((lab.text for lab in view.labels if lab.value == label), label or "")


# Statements of the answer path, built once (building one costs more than running it on SQLite).


def insert_values(model: type[Base], *columns: str) -> Insert:
    """``INSERT`` of the given columns, each bound to the parameter of its name."""
    return insert(model).values({column: bindparam(column) for column in columns})


INSERT_ANSWER = insert_values(
    Answer,
    "assignment_id",
    "worker_id",
    "item_id",
    "taskset_id",
    "kind",
    "label",
    "seconds",
    "created_at",
).returning(Answer.id)


def typed_bind(name: str, column: Any) -> Any:
    """A parameter typed like ``column``: statements that insert from a SELECT need the types
    that ``INSERT ... VALUES`` takes from its columns."""
    return bindparam(name, type_=column.type)


def assignment_values(item_id: Any) -> dict[str, Any]:
    """A new lease's columns, bound to the parameters of the lease statements."""
    return {
        "token": typed_bind("token", Assignment.token),
        "worker_id": typed_bind("worker", Assignment.worker_id),
        "item_id": item_id,
        "taskset_id": typed_bind("taskset", Assignment.taskset_id),
        "state": literal(AssignmentState.LEASED, type_=Assignment.state.type),
        "served_at": typed_bind("now", Assignment.served_at),
        "expires_at": typed_bind("expires", Assignment.expires_at),
    }


def reward_values(answer_id: Any) -> dict[str, Any]:
    """A reward's ledger columns, bound to the parameters of the answer's writes."""
    return {
        "worker_id": typed_bind("worker_id", LedgerEntry.worker_id),
        "taskset_id": typed_bind("taskset_id", LedgerEntry.taskset_id),
        "answer_id": answer_id,
        "kind": literal("reward", type_=LedgerEntry.kind.type),
        "amount_minor": typed_bind("amount_minor", LedgerEntry.amount_minor),
        "currency": typed_bind("currency", LedgerEntry.currency),
        "created_at": typed_bind("created_at", LedgerEntry.created_at),
    }


def insert_from_select(model: type[Base], values: dict[str, Any], source: Any) -> Insert:
    """``INSERT INTO model (...) SELECT <values> FROM source``: one row per row of ``source``."""
    return insert(model).from_select(list(values), select(*values.values()).select_from(source))


INSERT_ASSIGNMENT = insert(Assignment).values(
    assignment_values(typed_bind("item", Assignment.item_id))
)
INSERT_REWARD = insert(LedgerEntry).values(
    reward_values(typed_bind("answer_id", LedgerEntry.answer_id))
)
MARK_ANSWERED = (
    update(Assignment)
    .where(Assignment.id == bindparam("assignment_id"))
    .values(state=AssignmentState.ANSWERED, message_id=bindparam("message_id"))
)
REFUSE_LATE_ANSWER = (
    update(Assignment)
    .where(Assignment.id == bindparam("assignment_id"))
    .values(state=AssignmentState.REFUSED)
)
TAKE_SLOT = (
    update(Item).where(Item.id == bindparam("item"), Item.open.is_(True)).values(open_slot_values())
)


def settle_item_statement() -> Update:
    """Count an answer (``added`` is 0 for a skip) and give its lease slot back; gold items
    have no slots, so only their count changes."""
    added = bindparam("added", type_=Integer)
    return (
        update(Item)
        .where(Item.id == bindparam("item_id"))
        .values(
            answer_count=Item.answer_count + added,
            in_flight=Item.in_flight - case((Item.is_gold, 0), else_=1),
            open=case(
                (Item.is_gold, Item.open),
                else_=Item.answer_count + added + Item.in_flight - 1 < Item.needed,
            ),
        )
    )


def free_slots_statement() -> Update:
    """Give back the ``freed`` lease slots of expired leases of an item."""
    freed = bindparam("freed", type_=Integer)
    return (
        update(Item)
        .where(Item.id == bindparam("item"), Item.is_gold.is_(False))
        .values(
            in_flight=Item.in_flight - freed,
            open=Item.answer_count + Item.in_flight - freed < Item.needed,
        )
    )


SETTLE_ITEM = settle_item_statement()
FREE_SLOTS = free_slots_statement()


# PostgreSQL runs the writes that follow one another without reading each other's results as
# one statement, with data-modifying CTEs: one round trip instead of several. SQLite has no such
# CTEs, and in-process it pays no round trip per statement anyway, so it runs them one by one.


def answer_writes_statement() -> Select[Any]:
    """INSERT_ANSWER, MARK_ANSWERED, SETTLE_ITEM, INSERT_REWARD (when ``credit``) and
    STANDING_AFTER_ANSWER as one statement; returns the answer id and the standing."""
    answer = INSERT_ANSWER.cte("answer")
    credited = select(answer).where(bindparam("credit", type_=Boolean)).subquery()
    standing = STANDING_AFTER_ANSWER.cte("standing")
    return select(answer.c.id.label("answer_id"), *standing.c).add_cte(
        MARK_ANSWERED.cte("marked"),
        SETTLE_ITEM.cte("settled"),
        insert_from_select(LedgerEntry, reward_values(credited.c.id), credited).cte("rewarded"),
    )


def lease_and_assign_statement(lease: Update) -> Select[Any]:
    """The lease statement and INSERT_ASSIGNMENT of the item it took, as one statement."""
    leased = lease.cte("leased")
    assigned = insert_from_select(Assignment, assignment_values(leased.c.id), leased)
    return select(*leased.c).add_cte(assigned.cte("assigned"))


CHANGE_STATUS = (
    update(Membership)
    .where(
        Membership.worker_id == bindparam("worker"), Membership.taskset_id == bindparam("taskset")
    )
    .values(
        status=bindparam("new_status", type_=Membership.status.type),
        status_reason=bindparam("reason", type_=Membership.status_reason.type),
    )
)
ITEM_VOTES = (
    select(Answer.label, Membership.gold_correct, Membership.gold_answers)
    .join(
        Membership,
        and_(Membership.worker_id == Answer.worker_id, Membership.taskset_id == Answer.taskset_id),
    )
    .where(Answer.item_id == bindparam("item"), Answer.kind == AnswerKind.LABEL)
)


def set_confidence_statement(*, grow: bool) -> Update:
    """Store an item's confidence; with ``grow``, a contested item that reached its quota asks
    for one more answer, up to the set's maximum."""
    values: dict[str, Any] = {"confidence": bindparam("confidence", type_=Item.confidence.type)}
    if grow:
        needed = case(
            (
                and_(
                    Item.answer_count >= Item.needed, Item.needed < bindparam("max", type_=Integer)
                ),
                Item.needed + 1,
            ),
            else_=Item.needed,
        )
        values.update(needed=needed, open=Item.answer_count + Item.in_flight < needed)
    return update(Item).where(Item.id == bindparam("item")).values(values)


SET_CONFIDENCE = set_confidence_statement(grow=False)
SET_CONFIDENCE_AND_GROW = set_confidence_statement(grow=True)
RECENT_ANSWERS = (
    select(Answer.seconds, Answer.label)
    .where(Answer.taskset_id == bindparam("taskset"), Answer.worker_id == bindparam("worker"))
    .order_by(Answer.id.desc())
    .limit(bindparam("window", type_=Integer))
)
_crowd_sample = (
    select(Answer.label)
    .where(Answer.taskset_id == bindparam("taskset"), Answer.label.is_not(None))
    .order_by(Answer.id.desc())
    .limit(CROWD_SAMPLE)
    .subquery()
)
CROWD_COUNTS = select(_crowd_sample.c.label, func.count()).group_by(_crowd_sample.c.label)
# A suspended worker's answers no longer count, so each item they labeled asks for one more.
REPLACE_ANSWERS_OF = (
    update(Item)
    .where(
        Item.id.in_(
            select(Answer.item_id).where(
                Answer.worker_id == bindparam("worker"),
                Answer.taskset_id == bindparam("taskset"),
                Answer.kind == AnswerKind.LABEL,
            )
        ),
        Item.is_gold.is_(False),
    )
    .values(needed=Item.needed + 1, open=Item.answer_count + Item.in_flight < Item.needed + 1)
)
WORKER_INACTIVE = (
    update(Worker).where(Worker.id == bindparam("worker")).values(status=WorkerStatus.INACTIVE)
)


def expire_statement(condition: Any) -> Any:
    return (
        update(Assignment)
        .where(Assignment.state == AssignmentState.LEASED, condition)
        .values(state=AssignmentState.EXPIRED)
        .returning(Assignment.item_id)
    )


EXPIRE_DUE = expire_statement(Assignment.expires_at <= bindparam("now"))
EXPIRE_WORKER = expire_statement(Assignment.worker_id == bindparam("worker"))
EXPIRE_WORKER_IN_SET = expire_statement(
    and_(Assignment.worker_id == bindparam("worker"), Assignment.taskset_id == bindparam("taskset"))
)


def judge_qualification(standing: Standing, policy: Policy, *, force: bool) -> StatusChange | None:
    """Pass or fail a qualifying worker once they answered enough training items."""
    if standing.status != MembershipStatus.QUALIFYING:
        return None
    if standing.gold_answers < policy.qualification_items and not force:
        return None
    accuracy = standing.gold_correct / standing.gold_answers if standing.gold_answers else 1.0
    if accuracy >= policy.qualification_accuracy:
        return StatusChange(
            MembershipStatus.ACTIVE, f"passed the qualification with {accuracy:.0%}"
        )
    return StatusChange(
        MembershipStatus.FAILED,
        f"{standing.gold_correct} of {standing.gold_answers} training questions right, "
        f"{policy.qualification_accuracy:.0%} needed",
    )


class Labeling:
    """Leases and answers. One instance per process, shared by all handlers."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: timedelta,
        clock: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self.catalog = TaskSetCatalog()
        self.lease = lease
        self.clock = clock
        self.rng = rng
        pool_size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
        self._driver = open_driver(engine.url, pool_size=pool_size)
        # SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs row locks.
        self._sqlite = is_sqlite(engine.url)
        lock = not self._sqlite
        self.next_item_query = pick_regular_query(lock=lock)
        lease_regular = lease_regular_statement(self.next_item_query)
        # Writes that need not wait for each other's results: one statement each on SQLite,
        # merged into one statement on PostgreSQL (see answer_writes_statement).
        self._merge_writes = not self._sqlite
        self._lease_regular = (
            lease_and_assign_statement(lease_regular) if self._merge_writes else lease_regular
        )
        self._answer_writes = answer_writes_statement()
        self._pick_gold = (pick_gold_query(after=True), pick_gold_query(after=False))
        self._claim = claim_query(lock=lock)

    async def close(self) -> None:
        await self._driver.close()

    async def view(self, taskset_id: int) -> TaskSetView:
        """A task set's rendering data; read once per process."""
        entry = self.catalog.cached(taskset_id)
        if entry is None:
            entry = await self._driver.transaction(self.catalog.get, taskset_id)
        return entry[0]

    async def next_item_for(self, worker_id: int) -> NextItem:
        """The item to show this worker now: their live lease if they have one, else a new one."""
        return await self._driver.transaction(self._next_item_for, worker_id, self.clock())

    async def _next_item_for(self, tx: Transaction, worker_id: int, now: datetime) -> NextItem:
        state = await tx.first(WORKER_STATE, {"worker": worker_id})
        if state is None or state.current_taskset_id is None or state.status is None:
            return NoItem(NoItemReason.NO_TASKSET)  # never joined, or the set is gone
        view, policy = await self.catalog.get(tx, state.current_taskset_id)
        if state.worker_status == WorkerStatus.BANNED:
            return NoItem(NoItemReason.BLOCKED, view)
        standing = Standing(
            MembershipStatus(state.status),
            state.status_reason,
            state.answers,
            state.gold_answers,
            state.gold_correct,
        )
        params = {"worker": worker_id, "taskset": view.id, "now": now}
        live = await tx.first(LIVE_LEASE, params)
        if live is not None:
            return ServedItem(
                live.token,
                view,
                live.text,
                live.media_kind,
                live.media_ref,
                standing.answers + 1,
            )
        return await self._lease_next(
            tx, worker_id, view, policy, standing, TaskSetStatus(state.taskset_status), now
        )

    async def _lease_next(
        self,
        tx: Transaction,
        worker_id: int,
        view: TaskSetView,
        policy: Policy,
        standing: Standing,
        taskset_status: TaskSetStatus,
        now: datetime,
    ) -> NextItem:
        if standing.status == MembershipStatus.SUSPENDED:
            return NoItem(NoItemReason.SUSPENDED, view, standing.reason)
        if standing.status == MembershipStatus.FAILED:
            return NoItem(NoItemReason.FAILED_QUALIFICATION, view, standing.reason)
        if taskset_status != TaskSetStatus.ACTIVE:
            return NoItem(NoItemReason.NOT_ACTIVE, view)
        token = secrets.token_urlsafe(12)
        params = {
            "taskset": view.id,
            "worker": worker_id,
            "token": token,
            "now": now,
            "expires": now + self.lease,
        }
        row, assigned = None, False
        if standing.status == MembershipStatus.QUALIFYING:
            row = await self._lease_gold(tx, policy, params)
            if row is None:
                # Fewer gold items than the qualification asks for: judge on what was seen.
                change = judge_qualification(standing, policy, force=True)
                assert change is not None
                await self._change_status(tx, worker_id, view.id, change)
                if change.status == MembershipStatus.FAILED:
                    return NoItem(NoItemReason.FAILED_QUALIFICATION, view, change.reason)
        elif policy.gold_ratio and self.rng.random() < policy.gold_ratio:
            row = await self._lease_gold(tx, policy, params)
        if row is None:
            for _ in range(LEASE_ATTEMPTS):
                row = await tx.first(self._lease_regular, params)
                # Nothing returned: nothing left, unless another process closed the picked item
                # between pick and update; only then is a retry worth it.
                if row is not None or self._sqlite:
                    break
            assigned = self._merge_writes
        if row is None:
            return NoItem(NoItemReason.ALL_DONE, view)
        if not assigned:
            await tx.run(INSERT_ASSIGNMENT, {**params, "item": row.id})
        return ServedItem(
            token, view, row.text, row.media_kind, row.media_ref, standing.answers + 1
        )

    async def _lease_gold(self, tx: Transaction, policy: Policy, params: dict[str, Any]) -> Any:
        # Gold items have no quota: they are never "taken", only never shown twice to one worker.
        if policy.last_gold_position is None:
            return None
        start = self.rng.randint(0, policy.last_gold_position)
        for query in self._pick_gold:
            row = await tx.first(query, {**params, "start": start})
            if row is not None:
                return row
        return None

    async def _change_status(
        self, tx: Transaction, worker_id: int, taskset_id: int, change: StatusChange
    ) -> None:
        await tx.run(
            CHANGE_STATUS,
            {
                "worker": worker_id,
                "taskset": taskset_id,
                "new_status": change.status,
                "reason": change.reason,
            },
        )

    async def record_answer(
        self, token: str, worker_id: int, choice: Choice, *, message_id: int | None = None
    ) -> AnswerOutcome:
        """Store one answer for the lease named by ``token`` and lease the next item, atomically.

        Idempotent on the token: a double tap, a redelivered update or a forged button changes
        nothing and says why.
        """
        return await self._driver.transaction(
            self._record_answer, token, worker_id, choice, message_id, self.clock()
        )

    async def _record_answer(
        self,
        tx: Transaction,
        token: str,
        worker_id: int,
        choice: Choice,
        message_id: int | None,
        now: datetime,
    ) -> AnswerOutcome:
        claim = await tx.first(self._claim, {"token": token})
        if claim is None:
            return Rejected(Rejection.FORGED)
        if claim.worker_id != worker_id:
            return Rejected(Rejection.FOREIGN)
        view, policy = await self.catalog.get(tx, claim.taskset_id)
        if claim.state == AssignmentState.ANSWERED:
            if claim.answer_kind is None:
                # PostgreSQL: we waited on the row lock of a tap committed meanwhile, and the
                # row was re-read but the joined answer not: a double tap, answered just now.
                return Rejected(Rejection.DUPLICATE, seconds_since_answer=0.0)
            return Rejected(
                Rejection.DUPLICATE,
                chosen=chosen_text(view, claim.answer_kind, claim.answer_label),
                seconds_since_answer=(now - as_utc(claim.answered_at)).total_seconds(),
            )
        if isinstance(choice, int) and not 0 <= choice < len(view.labels):
            return Rejected(Rejection.FORGED)
        if claim.state == AssignmentState.REFUSED:
            return Rejected(Rejection.EXPIRED)
        # The sweep gave an expired lease's slot back; take the late answer only if a slot is
        # still free. If not, the worker is told so, and that is final: a repeat of the same
        # tap must not be stored later, when the item happens to ask for another answer.
        if (
            claim.state == AssignmentState.EXPIRED
            and not claim.is_gold
            and not await tx.run(TAKE_SLOT, {"item": claim.item_id})
        ):
            await tx.run(REFUSE_LATE_ANSWER, {"assignment_id": claim.id})
            return Rejected(Rejection.EXPIRED)

        if isinstance(choice, int):
            label, kind = view.labels[choice].value, AnswerKind.LABEL
        else:
            label, kind = None, AnswerKind(choice)
        chosen = chosen_text(view, kind, label)
        counted = label is not None
        graded = claim.is_gold and counted
        correct = graded and label == claim.gold_label
        answer_id, row = await self._write_answer(
            tx,
            {
                "assignment_id": claim.id,
                "message_id": message_id,
                "worker_id": worker_id,
                "item_id": claim.item_id,
                "taskset_id": claim.taskset_id,
                "kind": kind,
                "label": label,
                "seconds": max(0.0, (now - as_utc(claim.served_at)).total_seconds()),
                "created_at": now,
                "added": int(counted),
                "credit": counted and policy.reward_minor > 0,
                "amount_minor": policy.reward_minor,
                "currency": policy.currency,
                "gold": int(graded),
                "correct": int(correct),
            },
        )
        if counted and not claim.is_gold and policy.overlap_confidence is not None:
            await self._update_confidence(tx, claim.item_id, view, policy)
        standing = Standing(MembershipStatus(row[0]), *row[1:])
        gold = None
        if graded:
            gold = GoldFeedback(
                correct=correct,
                gold_label=chosen_text(view, AnswerKind.LABEL, claim.gold_label),
                explanation=claim.explanation,
                answer_id=answer_id,
                training=standing.status == MembershipStatus.QUALIFYING,
            )
        change = judge_qualification(standing, policy, force=False)
        if (
            change is None
            and standing.status == MembershipStatus.ACTIVE
            and (graded or standing.answers % RULE_CHECK_EVERY == 0)
        ):
            change = await self._check_rules(tx, worker_id, view.id, policy, standing)
        if change is not None:
            await self._change_status(tx, worker_id, view.id, change)
            if change.status == MembershipStatus.SUSPENDED:
                await tx.run(REPLACE_ANSWERS_OF, {"worker": worker_id, "taskset": view.id})
            standing = Standing(change.status, change.reason, *row[2:])
        following = await self._lease_next(
            tx, worker_id, view, policy, standing, TaskSetStatus(claim.taskset_status), now
        )
        return Recorded(chosen, gold, change, following)

    async def _write_answer(self, tx: Transaction, params: dict[str, Any]) -> tuple[int, Any]:
        """Store the answer, close its lease, settle the item, credit the reward and count it
        in the worker's standing; returns the answer id and the standing row."""
        if self._merge_writes:
            row = await tx.one(self._answer_writes, params)
            return row.answer_id, row[1:]
        answer_id: int = await tx.value(INSERT_ANSWER, params)
        await tx.run(MARK_ANSWERED, params)
        await tx.run(SETTLE_ITEM, params)
        if params["credit"]:
            await tx.run(INSERT_REWARD, {**params, "answer_id": answer_id})
        return answer_id, await tx.one(STANDING_AFTER_ANSWER, params)

    async def _update_confidence(
        self, tx: Transaction, item_id: int, view: TaskSetView, policy: Policy
    ) -> None:
        """Dynamic overlap: the item's posterior after this answer; a contested item that
        reached its quota asks for one more answer."""
        assert policy.overlap_confidence is not None
        index = {lab.value: k for k, lab in enumerate(view.labels)}
        votes = await tx.rows(ITEM_VOTES, {"item": item_id})
        _best, confidence = item_posterior(
            [(index[lab], smoothed_accuracy(c, n)) for lab, c, n in votes if lab in index],
            len(view.labels),
        )
        contested = confidence < policy.overlap_confidence
        await tx.run(
            SET_CONFIDENCE_AND_GROW if contested else SET_CONFIDENCE,
            {"item": item_id, "confidence": confidence, "max": policy.overlap_max},
        )

    async def _check_rules(
        self,
        tx: Transaction,
        worker_id: int,
        taskset_id: int,
        policy: Policy,
        standing: Standing,
    ) -> StatusChange | None:
        rules = policy.rules
        window = max(rules.dominant_window, rules.min_answers_for_speed)
        recent = await tx.rows(
            RECENT_ANSWERS, {"taskset": taskset_id, "worker": worker_id, "window": window}
        )
        counts = await tx.rows(CROWD_COUNTS, {"taskset": taskset_id})
        crowd = {label: count for label, count in counts}
        record = WorkerRecord(
            gold_answers=standing.gold_answers,
            gold_correct=standing.gold_correct,
            recent_seconds=[seconds for seconds, _ in recent],
            recent_labels=[label for _, label in recent if label is not None],
            crowd_counts=crowd,
        )
        reason = suspension_reason(record, rules)
        return StatusChange(MembershipStatus.SUSPENDED, reason) if reason else None

    async def expire_leases(self) -> int:
        """Give the items of leases that ran out back to the pool; returns how many expired."""
        return await self._driver.transaction(self.expire, EXPIRE_DUE, {"now": self.clock()})

    async def release_leases(self, worker_id: int, taskset_id: int) -> int:
        """Give back the worker's live leases in one set (they moved on to another)."""
        return await self._driver.transaction(
            self.expire, EXPIRE_WORKER_IN_SET, {"worker": worker_id, "taskset": taskset_id}
        )

    async def mark_inactive(self, worker_id: int) -> None:
        """The worker blocked the bot: stop sending, free their lease at once."""
        await self._driver.transaction(self._mark_inactive, worker_id)

    async def _mark_inactive(self, tx: Transaction, worker_id: int) -> None:
        await tx.run(WORKER_INACTIVE, {"worker": worker_id})
        await self.expire(tx, EXPIRE_WORKER, {"worker": worker_id})

    async def expire(self, tx: Transaction, statement: Any, params: dict[str, Any]) -> int:
        """Expire the leases ``statement`` selects and give their slots back."""
        freed = Counter(item_id for (item_id,) in await tx.rows(statement, params))
        for item_id, slots in freed.items():
            await tx.run(FREE_SLOTS, {"item": item_id, "freed": slots})
        return sum(freed.values())
