"""Undoing an answer: the statements that take back, one by one, what the answer's writes did
(``storage/statements/answers.py``), and that reopen its lease. An undo is rare, so each runs on
its own on both databases; the caller runs them in one transaction (``Labeling.undo_answer``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import aliased

from storage.models import (
    Answer,
    AnswerKind,
    Assignment,
    AssignmentState,
    Item,
    LedgerEntry,
    LedgerKind,
    Membership,
    Review,
    Tally,
    TaskSet,
    Worker,
)
from storage.statements.ledger import counter_entries
from storage.statements.shapes import Standing, columns_named
from storage.statements.tallies import add_to_buckets, answer_tally_rows


def undo_claim_query(*, lock: bool) -> Any:
    """The answer to undo with its lease, item, set, worker and standing. The row locks make a
    second tap on Undo wait for the first (SQLite: BEGIN IMMEDIATE)."""
    query = (
        select(
            Answer.worker_id,
            Answer.item_id,
            Answer.taskset_id,
            Answer.kind,
            Answer.created_at,
            Answer.withdrawn_at,
            Assignment.id.label("assignment_id"),
            Assignment.token,
            Assignment.state,
            Assignment.expires_at,
            Item.is_gold,
            Item.text,
            Item.media_kind,
            Item.media_ref,
            Item.set_aside_reason,
            TaskSet.status.label("taskset_status"),
            Worker.status.label("worker_status"),
            Worker.current_taskset_id,
            *columns_named(Membership, Standing),
            # A reviewer gave their verdict on it: it stays.
            exists()
            .where(Review.answer_id == Answer.id, Review.verdict.is_not(None))
            .label("reviewed"),
        )
        .join(Assignment, Assignment.id == Answer.assignment_id)
        .join(Item, Item.id == Answer.item_id)
        .join(TaskSet, TaskSet.id == Answer.taskset_id)
        .join(Worker, Worker.id == Answer.worker_id)
        .join(
            Membership,
            and_(
                Membership.worker_id == Answer.worker_id,
                Membership.taskset_id == Answer.taskset_id,
            ),
        )
        .where(Answer.id == bindparam("answer_id"))
    )
    # The membership too: a second tap that waited re-reads it, with the first's count.
    return query.with_for_update(of=[Answer, Assignment, Membership]) if lock else query


def reopen_item_statement() -> Any:
    """Uncount the answer (``removed`` is 0 for a skip) and take a lease slot again, if the
    item still has one for the worker: no row when it went to someone else meanwhile. Gold
    items have no slots."""
    removed = bindparam("removed", type_=Integer)
    answers_and_leases = Item.answer_count - removed + Item.in_flight + 1
    return (
        update(Item)
        .where(
            Item.id == bindparam("item_id"), or_(Item.is_gold, answers_and_leases <= Item.needed)
        )
        .values(
            answer_count=Item.answer_count - removed,
            in_flight=Item.in_flight + case((Item.is_gold, 0), else_=1),
            open=case((Item.is_gold, Item.open), else_=answers_and_leases < Item.needed),
        )
    )


REOPEN_ITEM = reopen_item_statement()
WITHDRAW_ANSWER = (
    update(Answer).where(Answer.id == bindparam("answer_id")).values(withdrawn_at=bindparam("now"))
)
# The same lease again under a new token, so the buttons of the answered message are stale.
REOPEN_LEASE = (
    update(Assignment)
    .where(Assignment.id == bindparam("assignment_id"))
    .values(token=bindparam("token"), state=AssignmentState.LEASED, expires_at=bindparam("expires"))
)
# The item sent after the undone answer: never answered, so its lease goes as if never given
# (the worker may get the item again); a lease reopened by an earlier undo keeps its row (the
# answer written over it has ledger entries) and only expires.
DROP_FRESH_LEASES = (
    delete(Assignment)
    .where(
        Assignment.worker_id == bindparam("worker"),
        Assignment.taskset_id == bindparam("taskset"),
        Assignment.state == AssignmentState.LEASED,
        ~exists().where(Answer.assignment_id == Assignment.id),
    )
    .returning(Assignment.item_id)
)
# The item leased in the answer's own transaction (the one sent after it), still unanswered:
# the undo puts it back.
NEXT_STILL_LEASED = select(
    exists().where(
        Assignment.worker_id == bindparam("worker_id"),
        Assignment.taskset_id == bindparam("taskset_id"),
        Assignment.state == AssignmentState.LEASED,
        Assignment.id != bindparam("assignment_id"),
        Assignment.served_at
        == select(Answer.created_at).where(Answer.id == bindparam("answer_id")).scalar_subquery(),
    )
)
# Its reviews no reviewer finished leave the queue (one leased finds its buttons stale).
DROP_REVIEWS = delete(Review).where(Review.answer_id == bindparam("answer_id"))
STANDING_AFTER_UNDO = (
    update(Membership)
    .where(
        Membership.worker_id == bindparam("worker_id"),
        Membership.taskset_id == bindparam("taskset_id"),
    )
    .values(answers=Membership.answers - 1)
    .returning(*columns_named(Membership, Standing))
)


def bucket_leave_statement() -> Any:
    """Move each ranked worker of the answer's six tallies (as they are before the undo) from
    the bucket of n answers to that of n - 1 (none at 0: that tally goes)."""
    tallies = select(Tally).where(answer_tally_rows()).subquery("tallies")
    ranked = and_(~tallies.c.hidden, tallies.c.gold_answers >= tallies.c.min_control)
    key = (tallies.c.scope, tallies.c.period, tallies.c.start)
    moves = union_all(
        select(*key, tallies.c.answers, literal(-1, Integer).label("workers")).where(ranked),
        select(*key, (tallies.c.answers - 1).label("answers"), literal(1, Integer)).where(
            ranked, tallies.c.answers > 1
        ),
    ).subquery("moves")
    # WHERE true: SQLite would read ON CONFLICT as a join constraint of the SELECT otherwise.
    return add_to_buckets(select(*moves.c).where(true()))


LEAVE_BUCKETS = bucket_leave_statement()
# An undone answer is never a gold one (its feedback showed the right label): only the count.
UNCOUNT_TALLIES = update(Tally).where(answer_tally_rows()).values(answers=Tally.answers - 1)
DROP_EMPTY_TALLIES = delete(Tally).where(answer_tally_rows(), Tally.answers == 0)


def money_end_query() -> Any:
    """The latest entry of an answer's money: its reward, or the entry that reverses the
    reward, or the one that reverses that, and so on (each entry is reversed at most once, so
    this is a chain). Positive when the answer's money stands, negative when it was taken back."""
    chain = (
        select(LedgerEntry.id)
        .where(LedgerEntry.answer_id == bindparam("answer_id"))
        .cte("chain", recursive=True)
    )
    later = aliased(LedgerEntry)
    chain = chain.union_all(select(later.id).where(later.reverses_id == chain.c.id))
    return select(
        LedgerEntry.id,
        LedgerEntry.worker_id,
        LedgerEntry.taskset_id,
        LedgerEntry.amount_minor,
        LedgerEntry.currency,
    ).where(LedgerEntry.id == select(func.max(chain.c.id)).scalar_subquery())


MONEY_END = money_end_query()
ONE_ENTRY = LedgerEntry.id == bindparam("entry", type_=LedgerEntry.id.type)
COUNTER_ENTRY = {
    LedgerKind.REVERSAL: counter_entries(LedgerKind.REVERSAL, ONE_ENTRY),
    LedgerKind.RESTORE: counter_entries(LedgerKind.RESTORE, ONE_ENTRY),
}
SET_UNSURE_REASON = (
    update(Answer)
    .where(
        Answer.id == bindparam("answer_id"),
        Answer.worker_id == bindparam("worker_id"),
        Answer.kind == AnswerKind.UNSURE,
        Answer.withdrawn_at.is_(None),
    )
    .values(reason=bindparam("reason", type_=Answer.reason.type))
)
