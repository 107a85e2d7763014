"""Typed SQLAlchemy 2 models. Constraints live here so the database enforces the invariants.

Room is left for the earnings ledger (``ledger_entries``) and the coordinators' flow (task set
status, disputes); the worker hot path touches ``assignments``, ``answers``, ``items`` and
``memberships`` only.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

# Deterministic constraint names keep Alembic autogenerate and SQLite batch mode happy.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (VARCHAR 16, no CHECK), identical on SQLite and PostgreSQL: a new
    # value needs no migration.
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class WorkerStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"  # blocked the bot (Telegram 403)
    BANNED = "banned"
    DELETED = "deleted"  # an anonymous stand-in for someone who erased their data (/delete)


class TaskSetStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


class MembershipStatus(enum.StrEnum):
    QUALIFYING = "qualifying"
    ACTIVE = "active"
    FAILED = "failed"  # did not pass the qualification
    SUSPENDED = "suspended"  # by a quality rule; a coordinator may reinstate


class AssignmentState(enum.StrEnum):
    LEASED = "leased"
    ANSWERED = "answered"
    EXPIRED = "expired"  # the slot went back to the pool; a late answer may still take one
    REFUSED = "refused"  # a late answer came when no slot was free: closed for good


class AnswerKind(enum.StrEnum):
    LABEL = "label"
    SKIP = "skip"
    UNSURE = "unsure"
    TEXT = "text"  # a typed reply (answers.text)
    VOICE = "voice"  # a voice note (answers.voice_file_id, voice_seconds, voice_bytes)


# Answers that count toward an item's overlap and earn the reward (not Skip or Not sure).
COUNTED_KINDS = (AnswerKind.LABEL, AnswerKind.TEXT, AnswerKind.VOICE)
COUNTED_KINDS_SQL = "('label', 'text', 'voice')"


class DisputeStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"  # the gold label was corrected to the worker's answer
    REJECTED = "rejected"


class DeliveryState(enum.StrEnum):
    """Where one recipient of a broadcast stands. A recipient is claimed (``sending``) before
    the message goes out, so a restart never sends twice: a claim left by a process that died
    mid-send becomes ``unknown`` and is not sent again."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    BLOCKED = "blocked"  # Telegram 403: the worker blocked the bot and is marked inactive
    FAILED = "failed"  # another refusal (chat not found, retries used up)
    UNKNOWN = "unknown"  # claimed by a process that died mid-send: maybe told, never again


class Worker(Base):
    __tablename__ = "workers"

    # The Telegram user id: the hot path needs no lookup to know who tapped.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    display_name: Mapped[str] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[WorkerStatus] = mapped_column(_enum(WorkerStatus), default=WorkerStatus.ACTIVE)
    current_taskset_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasksets.id", ondelete="SET NULL")
    )
    # The name shown on leaderboards when the worker opted in (/settings); else a pseudonym.
    public_name: Mapped[str | None] = mapped_column(String(64))
    joined_at: Mapped[datetime]
    # Whether the worker wants a message when a new task set opens (/settings).
    notify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class TaskSet(Base):
    __tablename__ = "tasksets"
    __table_args__ = (
        CheckConstraint("overlap_min >= 1 AND overlap_max >= overlap_min", name="overlap"),
        CheckConstraint("reward_minor >= 0", name="reward"),
        CheckConstraint("gold_ratio >= 0 AND gold_ratio <= 1", name="gold_ratio"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(256))
    instructions: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text)
    # [{"value": ..., "text": ...}, ...]; callback data carries the index into this list.
    labels: Mapped[list[Any]]
    overlap_min: Mapped[int]
    overlap_max: Mapped[int]
    overlap_confidence: Mapped[float | None] = mapped_column(Float)
    reward_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    gold_ratio: Mapped[float] = mapped_column(Float, default=0.1)
    qualification: Mapped[dict[str, Any] | None]
    # Auto-suspension thresholds (tasksets.quality.QualityRules as a dict).
    quality: Mapped[dict[str, Any]]
    status: Mapped[TaskSetStatus] = mapped_column(
        _enum(TaskSetStatus), default=TaskSetStatus.ACTIVE
    )
    # Rewards stay pending this long before they can be paid out.
    hold_hours: Mapped[int] = mapped_column(default=0, server_default="0")
    # The accuracy bonus (tasksets.bonus.BonusRule as a dict), if the set offers one.
    bonus: Mapped[dict[str, Any] | None]
    # "chat": a message per item; "card": one message edited from item to item.
    layout: Mapped[str] = mapped_column(String(8), default="chat", server_default="chat")
    # What workers answer with (tasksets.spec.AnswerType) and the limits of a typed or voice one.
    answer: Mapped[str] = mapped_column(String(16), default="labels", server_default="labels")
    max_length: Mapped[int] = mapped_column(default=1000, server_default="1000")
    min_seconds: Mapped[float | None] = mapped_column(Float)
    max_seconds: Mapped[float | None] = mapped_column(Float)
    gold_max_wer: Mapped[float] = mapped_column(Float, default=0.1, server_default="0.1")
    # How a text set's answers are aggregated: "vote" or "rover".
    aggregate: Mapped[str] = mapped_column(String(8), default="vote", server_default="vote")
    # The review stream (tasksets.review.ReviewRule as a dict), if the set has one.
    review: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    # When every item got its answers and the coordinators were told (once).
    completed_at: Mapped[datetime | None]


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("taskset_id", "external_id"),
        CheckConstraint("answer_count >= 0 AND in_flight >= 0", name="counts"),
        Index("ix_items_gold", "taskset_id", "is_gold", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    taskset_id: Mapped[int] = mapped_column(ForeignKey("tasksets.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    position: Mapped[int]
    text: Mapped[str | None] = mapped_column(Text)
    media_kind: Mapped[str | None] = mapped_column(String(8))
    media_ref: Mapped[str | None] = mapped_column(Text)
    # A label value, or the expected text of a set answered by typing.
    gold_label: Mapped[str | None] = mapped_column(Text)
    explanation: Mapped[str | None] = mapped_column(Text)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    # Labeled answers so far; live leases; answers wanted (grows with dynamic overlap).
    answer_count: Mapped[int] = mapped_column(default=0)
    in_flight: Mapped[int] = mapped_column(default=0)
    needed: Mapped[int]
    # answer_count + in_flight < needed, kept in step by every statement that moves the counters.
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    # Why Telegram refused to show this item (e.g. "message is too long"); never served again.
    set_aside_reason: Mapped[str | None] = mapped_column(Text)


# next_item_for walks this index in its ORDER BY; the cost does not depend on the set's size.
# Partial, with the pick's own "not set aside" predicate: without it PostgreSQL guesses that few
# rows have no reason (its default for IS NULL) and leaves the index walk for a sort.
Index(
    "ix_items_pick",
    Item.taskset_id,
    Item.is_gold,
    Item.open,
    Item.answer_count.desc(),
    Item.position,
    postgresql_where=Item.set_aside_reason.is_(None),
    sqlite_where=Item.set_aside_reason.is_(None),
)


class Membership(Base):
    """A worker's standing in one task set: qualification, gold score, suspension."""

    __tablename__ = "memberships"

    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True
    )
    taskset_id: Mapped[int] = mapped_column(
        ForeignKey("tasksets.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[MembershipStatus] = mapped_column(_enum(MembershipStatus))
    gold_answers: Mapped[int] = mapped_column(default=0)
    gold_correct: Mapped[int] = mapped_column(default=0)
    answers: Mapped[int] = mapped_column(default=0)
    status_reason: Mapped[str | None] = mapped_column(Text)
    joined_at: Mapped[datetime]
    # Reviews the set's answers (its review rule's level reached, and kept).
    reviewer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Assignment(Base):
    """An item handed to a worker: a lease with an expiry, named by an opaque token."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("worker_id", "item_id"),
        Index("ix_assignments_expiry", "state", "expires_at"),
        Index("ix_assignments_worker_live", "worker_id", "taskset_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(24), unique=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    taskset_id: Mapped[int] = mapped_column(ForeignKey("tasksets.id", ondelete="CASCADE"))
    state: Mapped[AssignmentState] = mapped_column(_enum(AssignmentState))
    # Set from the callback that answers it: storing it at send time would cost a round trip.
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    served_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("worker_id", "item_id"),
        Index("ix_answers_item", "item_id"),
        Index("ix_answers_worker", "taskset_id", "worker_id", "id"),
        Index("ix_answers_recent", "taskset_id", "id"),
        # An edited reply finds the answer it carried.
        Index(
            "ix_answers_reply",
            "worker_id",
            "reply_message_id",
            sqlite_where=text("reply_message_id IS NOT NULL"),
            postgresql_where=text("reply_message_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), unique=True
    )
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    taskset_id: Mapped[int] = mapped_column(ForeignKey("tasksets.id", ondelete="CASCADE"))
    kind: Mapped[AnswerKind] = mapped_column(_enum(AnswerKind))
    label: Mapped[str | None] = mapped_column(String(64))
    # A typed answer; a voice answer's Telegram file_id, length in seconds and size in bytes
    # (the file itself is fetched only by `labelbot export --media`).
    text: Mapped[str | None] = mapped_column(Text)
    voice_file_id: Mapped[str | None] = mapped_column(String(256))
    voice_seconds: Mapped[int | None]
    voice_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # The worker's message that carried a typed or voice answer: an edit of it within the edit
    # window replaces the answer (edited_at says when).
    reply_message_id: Mapped[int | None] = mapped_column(BigInteger)
    edited_at: Mapped[datetime | None]
    # Why the worker was not sure, when they said.
    reason: Mapped[str | None] = mapped_column(Text)
    # When the worker undid the answer (storage/undo.py). The row stays, for its ledger entries,
    # and every read of answers leaves it out (``live_answer``); the worker's next answer to the
    # reopened item writes over it.
    withdrawn_at: Mapped[datetime | None]
    seconds: Mapped[float]
    created_at: Mapped[datetime]


class ReviewVerdict(enum.StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"


class Review(Base):
    """One review of an answer: waiting for a reviewer (``worker_id`` NULL), leased to one
    (``token``, ``expires_at``: a lease that runs out makes it waiting again), done
    (``verdict``), or set aside for its reviewer (``worker_id`` but no ``expires_at`` and no
    verdict: Telegram refused to show it to them; another round waits in its place). A review
    of an answer on a gold item (``is_gold``) has a known verdict and scores the reviewer; any
    number of reviewers get one, each their own row. Other answers are reviewed in rounds:
    round 1, and another only while the verdicts disagree."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("answer_id", "worker_id"),
        CheckConstraint("verdict IS NULL OR worker_id IS NOT NULL", name="reviewer"),
        # An answer is queued at most once per round, whatever chose it (sample, confidence...).
        Index(
            "uq_reviews_round",
            "answer_id",
            "round",
            unique=True,
            sqlite_where=text("NOT is_gold"),
            postgresql_where=text("NOT is_gold"),
        ),
        # The queue a reviewer takes from, oldest first.
        Index(
            "ix_reviews_waiting",
            "taskset_id",
            "id",
            sqlite_where=text("verdict IS NULL"),
            postgresql_where=text("verdict IS NULL"),
        ),
        Index("ix_reviews_reviewer", "worker_id", "taskset_id", "verdict"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    taskset_id: Mapped[int] = mapped_column(ForeignKey("tasksets.id", ondelete="CASCADE"))
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    # What chose the answer: a tasksets.review.Reason ("gold" for a gold review).
    reason: Mapped[str] = mapped_column(String(16))
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    round: Mapped[int] = mapped_column(default=1)
    # The reviewer, once leased.
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    token: Mapped[str | None] = mapped_column(String(24), unique=True)
    served_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    verdict: Mapped[ReviewVerdict | None] = mapped_column(_enum(ReviewVerdict))
    # The reviewer's correction of a wrong answer: the right label, or the right text.
    corrected_label: Mapped[str | None] = mapped_column(String(64))
    corrected_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    reviewed_at: Mapped[datetime | None]


def live_answer() -> ColumnElement[bool]:
    """The answers that count. Every read of ``answers`` filters with it (as SQL text:
    ``withdrawn_at IS NULL``): an undone answer stays a row, for its ledger entries."""
    return Answer.withdrawn_at.is_(None)


class LedgerKind(enum.StrEnum):
    """What a ledger entry is, and so which cause it points to."""

    REWARD = "reward"  # an accepted answer (answer_id)
    REVIEW = "review"  # a review done (review_id)
    # An answer a review found wrong: its pending reward reversed (an adjustment's kind; its
    # entries are reversals, never restored by a reinstatement).
    REJECTED = "rejected"
    BONUS = "bonus"  # a task set's accuracy bonus (taskset_id), once per worker and set
    REVERSAL = "reversal"  # pending money taken back at a suspension (reverses_id)
    RESTORE = "restore"  # a reversal undone at a reinstatement (reverses_id)
    PAYOUT = "payout"  # paid out in a payout batch (payout_batch_id)
    # Kinds of adjustments only (their entries are reversals and restores): the money of an
    # answer its worker undid, reversed, and given back when they answer the item again. A
    # reinstatement never restores an undo.
    UNDONE = "undone"
    ANSWERED_AGAIN = "answered_again"


class LedgerEntry(Base):
    """Append-only earnings ledger in integer minor units; a balance is a SUM, never a float.

    An entry is pending until ``available_at`` (the set's hold period) and available after.
    A reversal carries the ``available_at`` of the entry it reverses, so it cancels pending
    money only, never money that may already have been paid out. Entries are never updated or
    deleted, except that /delete moves a worker's entries to an anonymous stand-in.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'reward' AND answer_id IS NOT NULL AND amount_minor >= 0)"
            " OR (kind = 'bonus' AND taskset_id IS NOT NULL AND amount_minor > 0)"
            " OR (kind IN ('reversal', 'restore') AND reverses_id IS NOT NULL"
            " AND adjustment_id IS NOT NULL)"
            " OR (kind = 'payout' AND payout_batch_id IS NOT NULL AND amount_minor < 0)"
            " OR (kind = 'review' AND review_id IS NOT NULL AND amount_minor >= 0)",
            name="cause",
        ),
        Index("ix_ledger_worker", "worker_id", "id"),
        # A worker's pending money: a range over the hold period, read from the index alone.
        Index("ix_ledger_pending", "worker_id", "currency", "available_at", "amount_minor"),
        # Each entry is reversed (or a reversal restored) at most once.
        Index(
            "uq_ledger_reverses",
            "reverses_id",
            unique=True,
            sqlite_where=text("reverses_id IS NOT NULL"),
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
        Index(
            "ix_ledger_adjustment",
            "adjustment_id",
            sqlite_where=text("adjustment_id IS NOT NULL"),
            postgresql_where=text("adjustment_id IS NOT NULL"),
        ),
        # One bonus per worker and set; one payout per worker and batch.
        Index(
            "uq_ledger_bonus",
            "taskset_id",
            "worker_id",
            unique=True,
            sqlite_where=text("kind = 'bonus'"),
            postgresql_where=text("kind = 'bonus'"),
        ),
        Index("uq_ledger_review", "review_id", unique=True),
        Index(
            "uq_ledger_payout",
            "payout_batch_id",
            "worker_id",
            unique=True,
            sqlite_where=text("payout_batch_id IS NOT NULL"),
            postgresql_where=text("payout_batch_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="RESTRICT"))
    taskset_id: Mapped[int | None] = mapped_column(ForeignKey("tasksets.id", ondelete="SET NULL"))
    # One reward per answer at most: the UNIQUE makes double crediting impossible.
    answer_id: Mapped[int | None] = mapped_column(
        ForeignKey("answers.id", ondelete="RESTRICT"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # a LedgerKind
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]
    available_at: Mapped[datetime]
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entries.id", ondelete="RESTRICT")
    )
    adjustment_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_adjustments.id", ondelete="RESTRICT")
    )
    payout_batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("payout_batches.id", ondelete="RESTRICT")
    )
    # The review a review reward pays for (uq_ledger_review: one reward per review).
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id", ondelete="RESTRICT"))
    # Why, for a bonus (in the worker's words); a reversal's reason is on its adjustment.
    note: Mapped[str | None] = mapped_column(Text)


class LedgerAdjustment(Base):
    """One suspension's reversal of a worker's pending money in a set, or the reinstatement
    that restored it: the cause its ledger entries point to, and the reason the worker reads."""

    __tablename__ = "ledger_adjustments"
    __table_args__ = (Index("ix_ledger_adjustments_worker", "worker_id", "taskset_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="RESTRICT"))
    taskset_id: Mapped[int | None] = mapped_column(ForeignKey("tasksets.id", ondelete="SET NULL"))
    # LedgerKind.REVERSAL or RESTORE (a suspension, a reinstatement), REJECTED (a review),
    # UNDONE or ANSWERED_AGAIN (an undo)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class PayoutBatch(Base):
    """One ``labelbot payouts --out`` listing; ``--mark-paid`` pays exactly its lines, once."""

    __tablename__ = "payout_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    min_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    # Given up unpaid (``labelbot payouts --cancel``): its money may be listed again.
    cancelled_at: Mapped[datetime | None]


class PayoutLine(Base):
    """A worker's amount in a payout batch, as the payouts file lists it."""

    __tablename__ = "payout_lines"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount"),)

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("payout_batches.id", ondelete="CASCADE"), primary_key=True
    )
    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="RESTRICT"), primary_key=True
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class LedgerTotal(Base):
    """Running sums of a worker's ledger per currency, kept in the same statement or
    transaction as every entry (CONSISTENCY_CHECKS recounts them from the entries), so that
    /me reads one row instead of a worker's whole history."""

    __tablename__ = "ledger_totals"

    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="RESTRICT"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    paid_minor: Mapped[int] = mapped_column(BigInteger)


class Tally(Base):
    """A worker's accepted answers and gold score in one scope (a task set's id, or 0 for all
    sets) and one period (a UTC day, a week from Monday, all time), kept by the answer's
    transaction. The leaderboards and /me read these rows, never the answers."""

    __tablename__ = "tallies"

    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="RESTRICT"), primary_key=True
    )
    scope: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    period: Mapped[str] = mapped_column(String(1), primary_key=True)  # tasksets.standing.Period
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    answers: Mapped[int]
    gold_answers: Mapped[int]
    gold_correct: Mapped[int]
    # Smoothed gold accuracy in parts per million: the tie-break, in the rank index.
    accuracy_ppm: Mapped[int]
    # Control answers needed to be ranked in this scope (tasksets.standing.min_control).
    min_control: Mapped[int]
    # Off the boards: suspended in this set, or erased (/delete).
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)


# A board's top ten walks this index in order, a rank counts the ties ahead of the worker in it,
# and the next place up is its neighbour. Only ranked tallies are in it (visible, with enough
# control answers), so none of these walks steps over workers the board does not rank. The
# queries spell the condition as the predicate does on each database (storage/standing.py).
Index(
    "ix_tallies_rank",
    Tally.scope,
    Tally.period,
    Tally.start,
    Tally.answers.desc(),
    Tally.accuracy_ppm.desc(),
    Tally.worker_id,
    sqlite_where=text("hidden = 0 AND gold_answers >= min_control"),
    postgresql_where=text("NOT hidden AND gold_answers >= min_control"),
)


class RankBucket(Base):
    """How many ranked workers (visible, with enough control answers) have exactly
    ``answers`` in a scope and period: a rank is a sum over the buckets above, whatever the
    number of workers. (No CHECK on ``workers``: an upsert that takes one away checks its
    candidate row, -1, before it meets the existing one; CONSISTENCY_CHECKS recounts them.)"""

    __tablename__ = "rank_buckets"

    scope: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    period: Mapped[str] = mapped_column(String(1), primary_key=True)
    start: Mapped[date] = mapped_column(Date, primary_key=True)
    answers: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    workers: Mapped[int]


class AppSecret(Base):
    """Secrets generated on first run and shared by every process (the pseudonym key)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]


class Dispute(Base):
    """A worker's objection to a gold answer; coordinators review these."""

    __tablename__ = "disputes"
    __table_args__ = (UniqueConstraint("answer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    status: Mapped[DisputeStatus] = mapped_column(
        _enum(DisputeStatus), default=DisputeStatus.OPEN, server_default=DisputeStatus.OPEN.value
    )
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(BigInteger)


class Broadcast(Base):
    """A message to many workers (a task set was published), sent by one process at a time:
    ``runner`` holds it until ``runner_until`` and renews that with every recipient."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    taskset_id: Mapped[int] = mapped_column(ForeignKey("tasksets.id", ondelete="CASCADE"))
    # The coordinator's chat and the progress message edited in place there.
    chat_id: Mapped[int] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    runner: Mapped[str | None] = mapped_column(String(32))
    runner_until: Mapped[datetime | None]


class BroadcastRecipient(Base):
    """One worker of a broadcast and whether they were told; claimed before each send."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (Index("ix_broadcast_recipients_state", "broadcast_id", "state", "worker_id"),)

    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True
    )
    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState))
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None]
