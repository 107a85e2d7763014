"""Recording an answer: claim the lease by its token, store the answer, close the lease,
settle the item, credit the reward and count the answer in the worker's standing, tallies,
rank buckets and ledger totals (``storage/statements/tallies.py``).

Each write is described once. SQLite runs them one by one (in-process, a statement costs no
round trip); PostgreSQL runs the same statements as one, merged with data-modifying CTEs
(``answer_writes_statement``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Insert,
    Integer,
    Select,
    Update,
    bindparam,
    case,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert

from storage.models import (
    Answer,
    Assignment,
    AssignmentState,
    Item,
    LedgerEntry,
    Membership,
    TaskSet,
)
from storage.statements.build import insert_from_select, typed_bind
from storage.statements.shapes import Standing, columns_named
from storage.statements.tallies import (
    ADD_REWARD_TO_TOTALS,
    UPSERT_TALLIES,
    bucket_moves_statement,
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
            Assignment.message_id,
            Item.is_gold,
            Item.gold_label,
            Item.explanation,
            TaskSet.status.label("taskset_status"),
            Answer.kind.label("answer_kind"),
            Answer.label.label("answer_label"),
            Answer.text.label("answer_text"),
            Answer.voice_seconds.label("answer_voice_seconds"),
            Answer.created_at.label("answered_at"),
            # An answer the worker undid (the lease was reopened): the new one writes over it.
            Answer.id.label("answer_id"),
            Answer.withdrawn_at,
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
    .returning(*columns_named(Membership, Standing))
)


def insert_answer_statement(*columns: str) -> Insert:
    """Store an answer; the answer of a reopened lease (one its worker undid) is written over,
    so the row, its id and its ledger entries stay the item's for that worker. A live answer
    is never overwritten: the lease's claim refuses a second answer first."""
    statement = upsert(Answer).values({column: bindparam(column) for column in columns})
    replaced: dict[str, Any] = {column: statement.excluded[column] for column in columns}
    return statement.on_conflict_do_update(
        index_elements=["assignment_id"],
        set_={**replaced, "withdrawn_at": None, "reason": None, "edited_at": None},
        where=Answer.withdrawn_at.is_not(None),
    ).returning(Answer.id)


INSERT_ANSWER = insert_answer_statement(
    "assignment_id",
    "worker_id",
    "item_id",
    "taskset_id",
    "kind",
    "label",
    "text",
    "voice_file_id",
    "voice_seconds",
    "voice_bytes",
    "reply_message_id",
    "seconds",
    "created_at",
)


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
        # Pending until then: the set's hold period after the answer.
        "available_at": typed_bind("available_at", LedgerEntry.available_at),
    }


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


SETTLE_ITEM = settle_item_statement()


def answer_writes_statement() -> Select[Any]:
    """INSERT_ANSWER, MARK_ANSWERED, SETTLE_ITEM, INSERT_REWARD and ADD_REWARD_TO_TOTALS
    (when ``credit``), STANDING_AFTER_ANSWER, UPSERT_TALLIES and the rank buckets' moves (when
    ``added``) as one statement; returns the answer id and the standing."""
    answer = INSERT_ANSWER.cte("answer")
    credited = select(answer).where(bindparam("credit", type_=Boolean)).subquery()
    standing = STANDING_AFTER_ANSWER.cte("standing")
    tallies = UPSERT_TALLIES.cte("tallied")
    return select(answer.c.id.label("answer_id"), *standing.c).add_cte(
        MARK_ANSWERED.cte("marked"),
        SETTLE_ITEM.cte("settled"),
        insert_from_select(LedgerEntry, reward_values(credited.c.id), credited).cte("rewarded"),
        ADD_REWARD_TO_TOTALS.cte("totalled"),
        tallies,
        bucket_moves_statement(tallies).cte("moved"),
    )
