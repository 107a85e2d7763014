"""The review stream's statements: queue an answer for review (in the answer's transaction),
lease a review to a reviewer, record the verdict and what follows from it.

A review is a row of ``reviews``: waiting (no reviewer, or a lease that ran out), leased (a
reviewer and a token), done (a verdict), or set aside for its reviewer (a reviewer, but neither
token nor expiry nor verdict: Telegram refused to show it to them). Queued reviews are taken
oldest first; a gold review is made for the reviewer on the spot from an answer on a gold item
they have not reviewed yet, as gold items are served.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.orm import aliased

from storage.models import (
    Answer,
    AnswerKind,
    Item,
    LedgerEntry,
    LedgerKind,
    Membership,
    Review,
    ReviewVerdict,
    TaskSet,
    Worker,
    live_answer,
)
from storage.statements.build import typed_bind
from storage.statements.shapes import Standing, columns_named

NOW = typed_bind("now", Review.created_at)
REVIEWER = typed_bind("worker", Review.worker_id)
TASKSET = typed_bind("taskset", Review.taskset_id)
NOT_GOLD = Review.is_gold.is_(False)
# Set aside for its reviewer: never leased again, and it keeps them from the answer for good.
NOT_SET_ASIDE = or_(Review.worker_id.is_(None), Review.expires_at.is_not(None))


def queue_statement(source: Any) -> Any:
    """Queue each ``answer_id`` of ``source`` for its first review (``reason``), unless it is
    queued already: ``uq_reviews_round`` makes that at most once, whatever chose it."""
    statement = upsert(Review).from_select(
        ["taskset_id", "answer_id", "reason", "is_gold", "round", "created_at"],
        select(
            source.c.taskset_id,
            source.c.answer_id,
            typed_bind("reason", Review.reason),
            literal(False, Boolean),
            literal(1, Integer),
            NOW,
        ).where(true()),  # WHERE true: SQLite would read ON CONFLICT as a join constraint
    )
    # The partial index's own predicate, word for word: SQLite matches it by its text.
    return statement.on_conflict_do_nothing(
        index_elements=["answer_id", "round"], index_where=text("NOT is_gold")
    )


QUEUE_ANSWER = queue_statement(
    select(
        typed_bind("taskset", Review.taskset_id).label("taskset_id"),
        typed_bind("answer", Review.answer_id).label("answer_id"),
    ).subquery("queued")
)
# Every labeled answer of an item whose confidence stayed low once it got its answers.
QUEUE_ITEM_ANSWERS = queue_statement(
    select(Answer.taskset_id, Answer.id.label("answer_id"))
    .where(Answer.item_id == bindparam("item"), Answer.kind == AnswerKind.LABEL, live_answer())
    .subquery("queued")
)
ITEM_PROGRESS = select(Item.answer_count, Item.needed).where(Item.id == bindparam("item"))
# Another review of the answer, waiting: after a verdict that needs another, or in place of one
# set aside for its reviewer.
NEXT_ROUND = insert(Review).values(
    taskset_id=TASKSET,
    answer_id=typed_bind("answer", Review.answer_id),
    reason=typed_bind("reason", Review.reason),
    is_gold=False,
    round=typed_bind("round", Review.round),
    created_at=NOW,
)


def not_reviewed_by_worker(answer_id: Any, *, other_than: Any = None) -> Any:
    """The reviewer has no review of this answer (besides ``other_than``, the row itself)."""
    mine = aliased(Review)
    condition = [mine.answer_id == answer_id, mine.worker_id == REVIEWER]
    if other_than is not None:
        condition.append(mine.id != other_than)
    return ~exists().where(*condition)


def pick_waiting_query(*, lock: bool) -> Any:
    """The oldest waiting review of the set whose answer is not the reviewer's own and not one
    they reviewed before."""
    query = (
        select(Review.id)
        .join(Answer, Answer.id == Review.answer_id)
        .where(
            Review.taskset_id == TASKSET,
            Review.verdict.is_(None),
            or_(Review.worker_id.is_(None), Review.expires_at <= NOW),
            Answer.worker_id != REVIEWER,
            not_reviewed_by_worker(Review.answer_id, other_than=Review.id),
        )
        .order_by(Review.id)
        .limit(1)
    )
    # Two reviewers never take the same row: the second skips it and takes the next one.
    return query.with_for_update(of=Review, skip_locked=True) if lock else query


def lease_waiting_statement(pick: Any) -> Any:
    """Take the picked review for the reviewer; no row means none left (or a lost race)."""
    return (
        update(Review)
        .where(
            Review.id == pick.scalar_subquery(),
            Review.verdict.is_(None),
            or_(Review.worker_id.is_(None), Review.expires_at <= NOW),
        )
        .values(
            worker_id=REVIEWER,
            token=typed_bind("token", Review.token),
            served_at=NOW,
            expires_at=typed_bind("expires", Review.expires_at),
        )
        .returning(Review.id)
    )


def pick_gold_answer_query(*, after: bool) -> Any:
    """Another worker's label on a gold item that the reviewer has not reviewed, from a random
    starting position (wrapping around once)."""
    start = bindparam("start", type_=Item.position.type)
    return (
        select(Answer.id)
        .join(Item, Item.id == Answer.item_id)
        .where(
            Item.taskset_id == TASKSET,
            Item.is_gold.is_(True),
            Item.position >= start if after else Item.position < start,
            Answer.kind == AnswerKind.LABEL,
            live_answer(),
            Answer.worker_id != REVIEWER,
            not_reviewed_by_worker(Answer.id),
        )
        .order_by(Item.position, Answer.id)
        .limit(1)
    )


LEASE_GOLD = (
    insert(Review)
    .values(
        taskset_id=TASKSET,
        answer_id=typed_bind("answer", Review.answer_id),
        reason="gold",
        is_gold=True,
        round=1,
        worker_id=REVIEWER,
        token=typed_bind("token", Review.token),
        served_at=NOW,
        expires_at=typed_bind("expires", Review.expires_at),
        created_at=NOW,
    )
    .returning(Review.id)
)

# What a review shows: the item, and the answer under review.
REVIEW_CONTENT = (
    select(
        Review.token,
        Item.text,
        Item.media_kind,
        Item.media_ref,
        Answer.kind.label("answer_kind"),
        Answer.label.label("answer_label"),
        Answer.text.label("answer_text"),
        Answer.voice_file_id,
    )
    .join(Answer, Answer.id == Review.answer_id)
    .join(Item, Item.id == Answer.item_id)
)
REVIEW_BY_ID = REVIEW_CONTENT.where(Review.id == bindparam("review"))
LIVE_REVIEW = REVIEW_CONTENT.where(
    Review.worker_id == REVIEWER,
    Review.taskset_id == TASKSET,
    Review.verdict.is_(None),
    Review.expires_at > NOW,
).limit(1)


def claim_review_query(*, lock: bool) -> Any:
    query = (
        select(
            Review.id,
            Review.worker_id,
            Review.taskset_id,
            Review.answer_id,
            Review.reason,
            Review.is_gold,
            Review.round,
            Review.verdict,
            Review.corrected_label,
            Review.reviewed_at,
            Answer.worker_id.label("answer_worker_id"),
            Answer.item_id,
            Answer.kind.label("answer_kind"),
            Answer.label.label("answer_label"),
            Item.gold_label,
            TaskSet.status.label("taskset_status"),
        )
        .join(Answer, Answer.id == Review.answer_id)
        .join(Item, Item.id == Answer.item_id)
        .join(TaskSet, TaskSet.id == Review.taskset_id)
        .where(Review.token == bindparam("token"))
    )
    # The row lock serialises two taps on one button across processes (SQLite: BEGIN IMMEDIATE).
    return query.with_for_update(of=Review) if lock else query


# The reviewer's lease of a review Telegram refused to show them: no token and no expiry, so
# it is no one's to lease again; their row for the answer keeps them from it.
SET_ASIDE_REVIEW = (
    update(Review)
    .where(Review.token == bindparam("token"), Review.verdict.is_(None))
    .values(token=null(), expires_at=null())
    .returning(
        Review.id, Review.taskset_id, Review.answer_id, Review.reason, Review.is_gold, Review.round
    )
)
RECORD_VERDICT = (
    update(Review)
    .where(Review.id == bindparam("review"))
    .values(
        verdict=bindparam("verdict", type_=Review.verdict.type),
        corrected_label=bindparam("corrected_label", type_=Review.corrected_label.type),
        reviewed_at=NOW,
    )
)
SET_CORRECTED_TEXT = (
    update(Review)
    .where(
        Review.id == bindparam("review"),
        Review.worker_id == REVIEWER,
        Review.verdict == ReviewVerdict.WRONG,
        Review.is_gold.is_(False),
    )
    .values(corrected_text=bindparam("text", type_=Review.corrected_text.type))
)
VERDICTS_OF_ANSWER = (
    select(Review.verdict)
    .where(Review.answer_id == bindparam("answer"), NOT_GOLD, Review.verdict.is_not(None))
    .order_by(Review.round)
)
# A control answer in the worker's standing: a gold review for a reviewer, or an answer that
# reviews found wrong for its worker (a control question missed).
SCORE = (
    update(Membership)
    .where(
        Membership.worker_id == bindparam("worker"), Membership.taskset_id == bindparam("taskset")
    )
    .values(
        gold_answers=Membership.gold_answers + 1,
        gold_correct=Membership.gold_correct + bindparam("correct", type_=Integer),
    )
    .returning(*columns_named(Membership, Standing))
)
STANDING_OF = select(*columns_named(Membership, Standing)).where(
    Membership.worker_id == bindparam("worker"), Membership.taskset_id == bindparam("taskset")
)
SET_REVIEWER = (
    update(Membership)
    .where(
        Membership.worker_id == bindparam("worker"), Membership.taskset_id == bindparam("taskset")
    )
    .values(reviewer=bindparam("reviewer", type_=Boolean))
)
# An answer found wrong no longer counts: its item asks for one more.
ONE_MORE_ANSWER = (
    update(Item)
    .where(Item.id == bindparam("item"), Item.is_gold.is_(False))
    .values(needed=Item.needed + 1, open=Item.answer_count + Item.in_flight < Item.needed + 1)
)
INSERT_REVIEW_REWARD = insert(LedgerEntry).values(
    worker_id=typed_bind("worker_id", LedgerEntry.worker_id),
    taskset_id=typed_bind("taskset_id", LedgerEntry.taskset_id),
    review_id=typed_bind("review", LedgerEntry.review_id),
    kind=LedgerKind.REVIEW.value,
    amount_minor=typed_bind("amount_minor", LedgerEntry.amount_minor),
    currency=typed_bind("currency", LedgerEntry.currency),
    created_at=typed_bind("created_at", LedgerEntry.created_at),
    available_at=typed_bind("available_at", LedgerEntry.available_at),
)

# ------------------------------------------------------------------ the stream's state

# Every verdict on the set's answers (gold reviews aside), round by round, with the standing of
# the reviewer, whose seat a correction takes in aggregation.
SET_VERDICTS = (
    select(
        Review.answer_id,
        Review.worker_id,
        Review.verdict,
        # The right label after ❌ on a label, or the right text typed after ❌ on a text.
        func.coalesce(Review.corrected_label, Review.corrected_text).label("corrected"),
        Review.reviewed_at,
        Membership.status.label("membership"),
    )
    .join(
        Membership,
        and_(
            Membership.worker_id == Review.worker_id,
            Membership.taskset_id == Review.taskset_id,
        ),
    )
    .where(Review.taskset_id == TASKSET, NOT_GOLD, Review.verdict.is_not(None))
    .order_by(Review.answer_id, Review.round)
)

_verdicts = aliased(Review)
REVIEW_COUNTS = select(
    func.count().filter(Review.verdict.is_(None), NOT_SET_ASIDE).label("waiting"),
    func.count().filter(Review.verdict.is_not(None), NOT_GOLD).label("done"),
    func.count().filter(Review.verdict.is_not(None), Review.is_gold).label("gold_done"),
).where(Review.taskset_id == TASKSET)
# Per worker whose answers were reviewed: reviews that found them right, and all reviews.
ACCEPTANCE = (
    select(
        Answer.worker_id,
        Worker.display_name,
        func.count().filter(Review.verdict == ReviewVerdict.CORRECT).label("accepted"),
        func.count().label("reviewed"),
    )
    .join(Answer, Answer.id == Review.answer_id)
    .join(Worker, Worker.id == Answer.worker_id)
    .where(Review.taskset_id == TASKSET, NOT_GOLD, Review.verdict.is_not(None))
    .group_by(Answer.worker_id, Worker.display_name)
    .order_by(Answer.worker_id)
)
# Pairs of verdicts on one answer (rounds 1 and 2, 2 and 3): reviewer agreement.
VERDICT_PAIRS = (
    select(Review.verdict.label("first"), _verdicts.verdict.label("second"))
    .join(
        _verdicts,
        and_(_verdicts.answer_id == Review.answer_id, _verdicts.round == Review.round + 1),
    )
    .where(
        Review.taskset_id == TASKSET,
        NOT_GOLD,
        _verdicts.is_gold.is_(False),
        Review.verdict.is_not(None),
        _verdicts.verdict.is_not(None),
    )
)
# Per reviewer: reviews done, and their score on gold reviews.
REVIEWER_SCORES = (
    select(
        Review.worker_id,
        Worker.display_name,
        func.count().label("reviews"),
        func.count().filter(Review.is_gold).label("gold_reviews"),
        func.count()
        .filter(
            Review.is_gold,
            (Review.verdict == ReviewVerdict.CORRECT) == (Answer.label == Item.gold_label),
        )
        .label("gold_right"),
    )
    .join(Answer, Answer.id == Review.answer_id)
    .join(Item, Item.id == Answer.item_id)
    .join(Worker, Worker.id == Review.worker_id)
    .where(Review.taskset_id == TASKSET, Review.verdict.is_not(None))
    .group_by(Review.worker_id, Worker.display_name)
    .order_by(Review.worker_id)
)
