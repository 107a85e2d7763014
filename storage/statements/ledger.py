"""Statements behind a suspension's reversal of pending money, a reinstatement's restoring of
it, and a worker leaving or rejoining a set's leaderboards. Described once; run on the hot
path's driver (a suspension in the answer's transaction) and in ORM transactions alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Insert,
    Integer,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from storage.models import (
    LedgerAdjustment,
    LedgerEntry,
    LedgerKind,
    LedgerTotal,
    Tally,
)
from storage.statements.build import typed_bind
from storage.statements.tallies import add_to_buckets

WORKER = typed_bind("worker", LedgerEntry.worker_id)
TASKSET = typed_bind("taskset", LedgerEntry.taskset_id)
NOW = typed_bind("now", LedgerEntry.created_at)
# Positive money that a suspension takes back while it is still pending.
REVERSIBLE_KINDS = (LedgerKind.REWARD, LedgerKind.BONUS, LedgerKind.RESTORE)


def whole_sum(column: Any) -> Any:
    """A sum of minor units as an integer (PostgreSQL sums BIGINT as NUMERIC), 0 for no rows."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def not_reversed() -> Any:
    """No entry reverses this one yet (``uq_ledger_reverses`` makes that at most one)."""
    reverser = aliased(LedgerEntry)
    return ~exists().where(reverser.reverses_id == LedgerEntry.id)


def reversible() -> Any:
    """The worker's money in the set that is still pending and not reversed yet."""
    return and_(
        LedgerEntry.worker_id == WORKER,
        LedgerEntry.available_at > NOW,
        LedgerEntry.taskset_id == TASKSET,
        # OR, not IN: an expanding IN list cannot be compiled once for the driver.
        or_(*(LedgerEntry.kind == kind.value for kind in REVERSIBLE_KINDS)),
        LedgerEntry.amount_minor > 0,
        not_reversed(),
    )


def restorable() -> Any:
    """The reversals of the worker's money in the set that no reinstatement restored yet."""
    return and_(
        LedgerEntry.adjustment_id.in_(
            select(LedgerAdjustment.id).where(
                LedgerAdjustment.worker_id == WORKER,
                LedgerAdjustment.taskset_id == TASKSET,
                LedgerAdjustment.kind == LedgerKind.REVERSAL.value,
            )
        ),
        LedgerEntry.kind == LedgerKind.REVERSAL.value,
        not_reversed(),
    )


def sums_of(condition: Any) -> Any:
    """Per currency: how many entries match and what they sum to."""
    return (
        select(
            LedgerEntry.currency,
            func.count().label("entries"),
            whole_sum(LedgerEntry.amount_minor).label("amount_minor"),
        )
        .where(condition)
        .group_by(LedgerEntry.currency)
    )


def counter_entries(kind: LedgerKind, condition: Any) -> Insert:
    """One entry of ``kind`` against each entry matching ``condition``: the opposite amount,
    the same date of availability (so a reversal cancels pending money only), pointing at the
    entry it counters and at the adjustment (``adjustment``) that is its cause."""
    return insert(LedgerEntry).from_select(
        [
            "worker_id",
            "taskset_id",
            "kind",
            "amount_minor",
            "currency",
            "created_at",
            "available_at",
            "reverses_id",
            "adjustment_id",
        ],
        select(
            LedgerEntry.worker_id,
            LedgerEntry.taskset_id,
            literal(kind.value, LedgerEntry.kind.type),
            -LedgerEntry.amount_minor,
            LedgerEntry.currency,
            NOW,
            LedgerEntry.available_at,
            LedgerEntry.id,
            typed_bind("adjustment", LedgerEntry.adjustment_id),
        ).where(condition),
    )


def answer_reward() -> Any:
    """The reward of one answer (``answer``), while it is pending and not reversed yet."""
    return and_(reversible(), LedgerEntry.answer_id == typed_bind("answer", LedgerEntry.answer_id))


PENDING_TO_REVERSE = sums_of(reversible())
PENDING_OF_ANSWER = sums_of(answer_reward())
REVERSALS_TO_RESTORE = sums_of(restorable())
INSERT_ADJUSTMENT = (
    insert(LedgerAdjustment)
    .values(
        worker_id=WORKER,
        taskset_id=TASKSET,
        kind=typed_bind("adjustment_kind", LedgerAdjustment.kind),
        reason=typed_bind("adjustment_reason", LedgerAdjustment.reason),
        created_at=NOW,
    )
    .returning(LedgerAdjustment.id)
)
REVERSE_PENDING = counter_entries(LedgerKind.REVERSAL, reversible())
RESTORE_REVERSALS = counter_entries(LedgerKind.RESTORE, restorable())
REVERSE_ANSWER_REWARD = counter_entries(LedgerKind.REVERSAL, answer_reward())
ADD_TO_TOTAL = (
    update(LedgerTotal)
    .where(
        LedgerTotal.worker_id == WORKER,
        LedgerTotal.currency == typed_bind("in_currency", LedgerTotal.currency),
    )
    .values(total_minor=LedgerTotal.total_minor + typed_bind("delta", LedgerTotal.total_minor))
)


def bucket_shift_statement(*, leaving: bool, one_scope: bool) -> Insert:
    """Take the worker's ranked tallies out of their rank buckets (``leaving``) or put the
    hidden ones back, in one set (``scope``) or in all scopes."""
    condition = [
        Tally.worker_id == typed_bind("worker", Tally.worker_id),
        Tally.hidden.is_(not leaving),
        Tally.gold_answers >= Tally.min_control,
    ]
    if one_scope:
        condition.append(Tally.scope == typed_bind("in_scope", Tally.scope))
    # Each tally of one worker has its own (scope, period, start): one bucket row per tally.
    shifted = select(
        Tally.scope,
        Tally.period,
        Tally.start,
        Tally.answers,
        literal(-1 if leaving else 1, Integer).label("workers"),
    ).where(*condition)
    return add_to_buckets(shifted)


def set_hidden_statement(*, one_scope: bool) -> Any:
    condition = [Tally.worker_id == typed_bind("worker", Tally.worker_id)]
    if one_scope:
        condition.append(Tally.scope == typed_bind("in_scope", Tally.scope))
    return update(Tally).where(*condition).values(hidden=bindparam("hide", type_=Boolean))


LEAVE_BUCKETS_IN_SET = bucket_shift_statement(leaving=True, one_scope=True)
JOIN_BUCKETS_IN_SET = bucket_shift_statement(leaving=False, one_scope=True)
LEAVE_ALL_BUCKETS = bucket_shift_statement(leaving=True, one_scope=False)
HIDE_IN_SET = set_hidden_statement(one_scope=True)
HIDE_EVERYWHERE = set_hidden_statement(one_scope=False)


# Each query counts rows where the ledger breaks one of its rules (all should be 0).
LEDGER_CHECKS = {
    "ledger totals that differ from the sum of the entries": (
        "SELECT count(*) FROM (SELECT worker_id, currency, sum(amount_minor) AS total, "
        "sum(CASE WHEN kind = 'payout' THEN -amount_minor ELSE 0 END) AS paid "
        "FROM ledger_entries GROUP BY worker_id, currency) e FULL OUTER JOIN ledger_totals t "
        "ON t.worker_id = e.worker_id AND t.currency = e.currency "
        "WHERE coalesce(e.total, 0) <> coalesce(t.total_minor, 0) "
        "OR coalesce(e.paid, 0) <> coalesce(t.paid_minor, 0)"
    ),
    "reversals and restores that do not exactly cancel the entry they point to": (
        "SELECT count(*) FROM ledger_entries r JOIN ledger_entries e ON e.id = r.reverses_id "
        "WHERE r.amount_minor <> -e.amount_minor OR r.available_at <> e.available_at "
        "OR r.worker_id <> e.worker_id OR r.currency <> e.currency "
        "OR NOT ((r.kind = 'reversal' AND e.kind IN ('reward', 'bonus', 'restore')) "
        "OR (r.kind = 'restore' AND e.kind = 'reversal'))"
    ),
    "payouts that differ from the lines of their batch": (
        "SELECT (SELECT count(*) FROM payout_lines l JOIN payout_batches b ON b.id = l.batch_id "
        "WHERE b.paid_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_entries e "
        "WHERE e.payout_batch_id = l.batch_id AND e.worker_id = l.worker_id "
        "AND e.amount_minor = -l.amount_minor)) + (SELECT count(*) FROM ledger_entries e "
        "WHERE e.kind = 'payout' AND NOT EXISTS (SELECT 1 FROM payout_lines l "
        "JOIN payout_batches b ON b.id = l.batch_id WHERE l.batch_id = e.payout_batch_id "
        "AND l.worker_id = e.worker_id AND b.paid_at IS NOT NULL))"
    ),
}
