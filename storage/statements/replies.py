"""Typed and voice answers: the lease a worker's message answers, the answer a message
carried (a redelivered or edited message finds it), and an edit of it."""

from __future__ import annotations

from sqlalchemy import bindparam, exists, select, update

from storage.models import Answer, Assignment, AssignmentState, Item, Review, Worker

# The worker's newest assignment in their current set: a message answers it while it is
# leased (or expired: a late answer may still take a slot, as a late tap does).
LATEST_ASSIGNMENT = (
    select(Assignment.token, Assignment.state, Assignment.taskset_id)
    .where(
        Assignment.worker_id == bindparam("worker"),
        Assignment.taskset_id
        == select(Worker.current_taskset_id)
        .where(Worker.id == bindparam("worker"))
        .scalar_subquery(),
    )
    .order_by(Assignment.id.desc())
    .limit(1)
)
REPLY_ANSWER = (
    select(
        Answer.id,
        Answer.taskset_id,
        Answer.kind,
        Answer.text,
        Answer.voice_seconds,
        Answer.created_at,
        Item.is_gold,
        # A reviewer took it (a verdict given, or being given on the text they were shown).
        exists()
        .where(Review.answer_id == Answer.id, Review.worker_id.is_not(None))
        .label("reviewed"),
    )
    .join(Item, Item.id == Answer.item_id)
    .where(
        Answer.worker_id == bindparam("worker"),
        Answer.reply_message_id == bindparam("reply_message_id"),
    )
)
EDIT_ANSWER = (
    update(Answer)
    .where(Answer.id == bindparam("answer_id"))
    .values(
        text=bindparam("text", type_=Answer.text.type),
        edited_at=bindparam("now", type_=Answer.edited_at.type),
    )
)
# The bot's message showing a leased item of a set answered by typing or voice: its buttons go
# when the answer comes as a message of the worker's.
NOTE_ITEM_MESSAGE = (
    update(Assignment)
    .where(Assignment.token == bindparam("token"), Assignment.state == AssignmentState.LEASED)
    .values(message_id=bindparam("message_id", type_=Assignment.message_id.type))
)
