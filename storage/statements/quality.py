"""Reads and writes behind the quality rules: a worker's status, their recent answers and the
crowd's label mix (auto-suspension), and an item's confidence (dynamic overlap)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Update, and_, bindparam, case, func, or_, select, update

from storage.models import COUNTED_KINDS, Answer, AnswerKind, Item, Membership, live_answer

# The crowd's label mix is read from this many of the set's latest answers.
CROWD_SAMPLE = 1000

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
    .where(Answer.item_id == bindparam("item"), Answer.kind == AnswerKind.LABEL, live_answer())
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
    .where(
        Answer.taskset_id == bindparam("taskset"),
        Answer.worker_id == bindparam("worker"),
        live_answer(),
    )
    .order_by(Answer.id.desc())
    .limit(bindparam("window", type_=Integer))
)
_crowd_sample = (
    select(Answer.label)
    .where(Answer.taskset_id == bindparam("taskset"), Answer.label.is_not(None), live_answer())
    .order_by(Answer.id.desc())
    .limit(CROWD_SAMPLE)
    .subquery()
)
CROWD_COUNTS = select(_crowd_sample.c.label, func.count().label("answers")).group_by(
    _crowd_sample.c.label
)
# A suspended worker's answers no longer count, so each item they labeled asks for one more.
REPLACE_ANSWERS_OF = (
    update(Item)
    .where(
        Item.id.in_(
            select(Answer.item_id).where(
                Answer.worker_id == bindparam("worker"),
                Answer.taskset_id == bindparam("taskset"),
                # Not IN: the hot path's driver binds no expanding (list) parameters.
                or_(*(Answer.kind == kind for kind in COUNTED_KINDS)),
                live_answer(),
            )
        ),
        Item.is_gold.is_(False),
    )
    .values(needed=Item.needed + 1, open=Item.answer_count + Item.in_flight < Item.needed + 1)
)
