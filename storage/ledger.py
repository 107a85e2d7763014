"""The earnings ledger: balances a worker can check to the cent, pending money reversed and
restored, accuracy bonuses, and payouts paid exactly once.

Every entry is an integer amount in minor units with a currency, a date from which it is
available, and a pointer to its cause: the answer (reward), the task set (bonus), the entry it
reverses with the suspension or reinstatement behind it (reversal, restore), or the payout
batch (payout). A balance is a sum of entries:

* available: entries whose date has come (payouts, negative, count at once);
* pending: entries still in their set's hold period;
* paid: minus the payouts.

``ledger_totals`` keeps each worker's sum per currency in the same transaction as every entry,
so /me needs the totals row and the few pending entries, not the whole history. Rewards are
credited in the answer's own transaction (``storage/statements/answers.py``): one per answer at
most, by a UNIQUE on the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.driver import Transaction
from storage.models import (
    LedgerAdjustment,
    LedgerEntry,
    LedgerKind,
    LedgerTotal,
    Membership,
    MembershipStatus,
    PayoutBatch,
    PayoutLine,
    Tally,
    TaskSet,
    Worker,
    WorkerStatus,
)
from storage.session_tx import SessionTransaction
from storage.standing import leave_boards, rejoin_boards
from storage.statements.ledger import (
    ADD_TO_TOTAL,
    INSERT_ADJUSTMENT,
    PENDING_OF_ANSWER,
    PENDING_TO_REVERSE,
    RESTORE_REVERSALS,
    REVERSALS_TO_RESTORE,
    REVERSE_ANSWER_REWARD,
    REVERSE_PENDING,
    whole_sum,
)
from tasksets.bonus import BonusRule, bonus_award
from tasksets.money import available_from
from tasksets.payouts import PayoutRow
from tasksets.standing import EPOCH, Period

RECENT_LINES = 10


@dataclass(frozen=True, slots=True)
class Balance:
    """A worker's money in one currency, in minor units."""

    currency: str
    available_minor: int  # may be paid out now
    pending_minor: int  # still in a hold period
    paid_minor: int  # paid out so far


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One line of a worker's history: an entry, or all the entries of one adjustment."""

    kind: LedgerKind
    amount_minor: int
    currency: str
    created_at: datetime
    taskset_title: str | None
    reason: str | None  # a bonus's or an adjustment's


@dataclass(frozen=True, slots=True)
class Statement:
    """What /earnings shows: the balances and the latest lines."""

    balances: list[Balance]
    lines: list[LedgerLine]


@dataclass(frozen=True, slots=True)
class Adjusted:
    """Money a suspension reversed (or a reinstatement restored), as a positive amount."""

    amount_minor: int
    currency: str
    entries: int


@dataclass(frozen=True, slots=True)
class GrantedBonus:
    worker_id: int
    amount_minor: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True)
class PayoutListing:
    """A new payout batch (None when nobody reached the minimum) and its rows."""

    batch_id: int | None
    currency: str
    rows: list[PayoutRow]


@dataclass(frozen=True, slots=True)
class MarkedPaid:
    batch_id: int
    workers: int
    total_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class PayoutRefused:
    """Why a payouts file was not applied (nothing was written)."""

    reason: str


# --------------------------------------------------------- work inside a transaction


# Each kind of adjustment: the sums of the entries it counters, and the statement that does.
ADJUSTMENTS = {
    LedgerKind.REVERSAL: (PENDING_TO_REVERSE, REVERSE_PENDING),
    LedgerKind.RESTORE: (REVERSALS_TO_RESTORE, RESTORE_REVERSALS),
    LedgerKind.REJECTED: (PENDING_OF_ANSWER, REVERSE_ANSWER_REWARD),
}


async def _adjust(
    tx: Transaction,
    worker_id: int,
    taskset_id: int,
    kind: LedgerKind,
    reason: str | None,
    now: datetime,
    answer_id: int | None = None,
) -> Adjusted | None:
    """Counter every matching entry (pending money for a reversal, live reversals for a
    restore, one answer's pending reward for a rejection) under one new adjustment, and move
    the worker's totals by as much."""
    params: dict[str, Any] = {
        "worker": worker_id,
        "taskset": taskset_id,
        "now": now,
        "answer": answer_id,
    }
    sums_statement, counter_statement = ADJUSTMENTS[kind]
    sums = [row for row in await tx.rows(sums_statement, params) if row.entries]
    if not sums:
        return None
    params["adjustment"] = await tx.value(
        INSERT_ADJUSTMENT, {**params, "adjustment_kind": kind.value, "adjustment_reason": reason}
    )
    await tx.run(counter_statement, params)
    for row in sums:
        await tx.run(
            ADD_TO_TOTAL,
            {"worker": worker_id, "in_currency": row.currency, "delta": -row.amount_minor},
        )
    # A set has one currency.
    return Adjusted(abs(sums[0].amount_minor), sums[0].currency, sums[0].entries)


async def on_rejected(
    tx: Transaction, worker_id: int, taskset_id: int, answer_id: int, now: datetime
) -> Adjusted | None:
    """Reviews found an answer wrong: its reward, if still pending, is reversed (a suspension's
    reinstatement does not restore it). Runs in the transaction of the deciding review."""
    return await _adjust(
        tx, worker_id, taskset_id, LedgerKind.REJECTED, "found wrong in review", now, answer_id
    )


async def on_suspended(
    tx: Transaction, worker_id: int, taskset_id: int, reason: str | None, now: datetime
) -> Adjusted | None:
    """A worker was suspended in a set: off its leaderboards, and their money there that is
    still pending reversed (what is available already stays theirs). Returns what was
    reversed, or None. Runs in the transaction that suspends."""
    await leave_boards(tx, worker_id, taskset_id)
    return await _adjust(tx, worker_id, taskset_id, LedgerKind.REVERSAL, reason, now)


async def on_reinstated(
    tx: Transaction, worker_id: int, taskset_id: int, now: datetime
) -> Adjusted | None:
    """A suspension was lifted: back on the set's leaderboards, and every reversal of their
    money there restored (pending again until its original date, or available if that has
    passed). Returns what was restored, or None. Runs in the transaction that reinstates."""
    await rejoin_boards(tx, worker_id, taskset_id)
    return await _adjust(tx, worker_id, taskset_id, LedgerKind.RESTORE, "reinstated", now)


async def lock_payouts(session: AsyncSession) -> None:
    """Serialise payout listings and markings (SQLite's BEGIN IMMEDIATE does already)."""
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE payout_batches IN SHARE ROW EXCLUSIVE MODE"))


async def add_entries(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """Append ledger entries and move their workers' totals, in the caller's transaction."""
    if not entries:
        return
    await session.execute(insert(LedgerEntry), entries)
    tx = SessionTransaction(session)
    for entry in entries:
        await tx.run(
            ADD_TO_TOTAL,
            {
                "worker": entry["worker_id"],
                "in_currency": entry["currency"],
                "delta": entry["amount_minor"],
            },
        )
        if entry["kind"] == LedgerKind.PAYOUT:
            await session.execute(
                update(LedgerTotal)
                .where(
                    LedgerTotal.worker_id == entry["worker_id"],
                    LedgerTotal.currency == entry["currency"],
                )
                .values(paid_minor=LedgerTotal.paid_minor - entry["amount_minor"])
            )


async def ensure_totals(session: AsyncSession, worker_ids: list[int], currency: str) -> None:
    """A totals row for each worker in the currency, so ADD_TO_TOTAL finds one."""
    have = set(
        await session.scalars(
            select(LedgerTotal.worker_id).where(
                LedgerTotal.worker_id.in_(worker_ids), LedgerTotal.currency == currency
            )
        )
    )
    missing = [w for w in worker_ids if w not in have]
    if missing:
        await session.execute(
            insert(LedgerTotal),
            [
                {"worker_id": w, "currency": currency, "total_minor": 0, "paid_minor": 0}
                for w in missing
            ],
        )


# ------------------------------------------------------------------------ the service


class Ledger:
    """Reads and batch writes of the ledger (bonuses, payouts); reached as ``store.ledger``."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]
    ) -> None:
        self.sessions = sessions
        self.clock = clock

    # -------------------------------------------------------------------- reads

    async def balances(self, worker_id: int) -> list[Balance]:
        """Available, pending and paid per currency: the totals row less the pending entries
        (an index range over the hold period, whatever the length of the history)."""
        now = self.clock()
        pending = (
            select(whole_sum(LedgerEntry.amount_minor))
            .where(
                LedgerEntry.worker_id == LedgerTotal.worker_id,
                LedgerEntry.available_at > now,
                LedgerEntry.currency == LedgerTotal.currency,
            )
            .scalar_subquery()
        )
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    LedgerTotal.currency,
                    LedgerTotal.total_minor,
                    LedgerTotal.paid_minor,
                    pending.label("pending_minor"),
                )
                .where(LedgerTotal.worker_id == worker_id)
                .order_by(LedgerTotal.currency)
            )
            return [
                Balance(
                    currency=row.currency,
                    available_minor=int(row.total_minor) - int(row.pending_minor),
                    pending_minor=int(row.pending_minor),
                    paid_minor=int(row.paid_minor),
                )
                for row in rows
            ]

    async def lines(self, worker_id: int, limit: int = RECENT_LINES) -> list[LedgerLine]:
        """The latest lines of a worker's history, newest first. The entries of one
        suspension's reversal (or one reinstatement) make one line with their sum."""
        async with self.sessions() as session:
            entries = await session.execute(
                select(
                    LedgerEntry.kind,
                    LedgerEntry.amount_minor,
                    LedgerEntry.currency,
                    LedgerEntry.created_at,
                    LedgerEntry.note.label("reason"),
                    LedgerEntry.id.label("order"),
                    TaskSet.title,
                )
                .outerjoin(TaskSet, TaskSet.id == LedgerEntry.taskset_id)
                .where(LedgerEntry.worker_id == worker_id, LedgerEntry.adjustment_id.is_(None))
                .order_by(LedgerEntry.id.desc())
                .limit(limit)
            )
            adjustments = await session.execute(
                select(
                    LedgerAdjustment.kind,
                    whole_sum(LedgerEntry.amount_minor).label("amount_minor"),
                    LedgerEntry.currency,
                    LedgerAdjustment.created_at,
                    LedgerAdjustment.reason,
                    func.max(LedgerEntry.id).label("order"),
                    TaskSet.title,
                )
                .join(LedgerEntry, LedgerEntry.adjustment_id == LedgerAdjustment.id)
                .outerjoin(TaskSet, TaskSet.id == LedgerAdjustment.taskset_id)
                .where(LedgerAdjustment.worker_id == worker_id)
                .group_by(
                    LedgerAdjustment.id,
                    LedgerAdjustment.kind,
                    LedgerEntry.currency,
                    LedgerAdjustment.created_at,
                    LedgerAdjustment.reason,
                    TaskSet.title,
                )
                .order_by(LedgerAdjustment.id.desc())
                .limit(limit)
            )
            rows = sorted([*entries, *adjustments], key=lambda row: row.order, reverse=True)
        return [
            LedgerLine(
                kind=LedgerKind(row.kind),
                amount_minor=int(row.amount_minor),
                currency=row.currency,
                created_at=row.created_at,
                taskset_title=row.title,
                reason=row.reason,
            )
            for row in rows[:limit]
        ]

    async def statement(self, worker_id: int) -> Statement:
        return Statement(await self.balances(worker_id), await self.lines(worker_id))

    async def currencies(self) -> list[str]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(LedgerTotal.currency).distinct().order_by(LedgerTotal.currency)
                )
            )

    # ----------------------------------------------------------------- bonuses

    async def grant_bonuses(self, taskset_id: int) -> list[GrantedBonus]:
        """Grant the set's accuracy bonus to every worker who qualifies and has none yet, in
        one transaction; returns the new ones. Granting again grants nobody twice."""
        for attempt in (1, 2):
            try:
                return await self._grant_bonuses(taskset_id)
            except IntegrityError:  # another process granted at the same moment: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _grant_bonuses(self, taskset_id: int) -> list[GrantedBonus]:
        now = self.clock()
        async with self.sessions.begin() as session:
            taskset = await session.get(TaskSet, taskset_id, with_for_update=True)
            if taskset is None or taskset.bonus is None:
                return []
            rule = BonusRule.model_validate(taskset.bonus)
            already = select(LedgerEntry.worker_id).where(
                LedgerEntry.kind == LedgerKind.BONUS.value, LedgerEntry.taskset_id == taskset_id
            )
            candidates = await session.execute(
                select(Tally.worker_id, Tally.answers, Tally.gold_answers, Tally.gold_correct)
                .join(
                    Membership,
                    and_(
                        Membership.worker_id == Tally.worker_id,
                        Membership.taskset_id == taskset_id,
                    ),
                )
                .join(Worker, Worker.id == Tally.worker_id)
                .where(
                    Tally.scope == taskset_id,
                    Tally.period == Period.ALL.value,
                    Tally.start == EPOCH,
                    Membership.status == MembershipStatus.ACTIVE,
                    Worker.status != WorkerStatus.DELETED,
                    Tally.worker_id.not_in(already),
                )
                .order_by(Tally.worker_id)
            )
            granted = []
            for row in candidates:
                award = bonus_award(
                    rule,
                    answers=row.answers,
                    gold_answers=row.gold_answers,
                    gold_correct=row.gold_correct,
                    earned_minor=row.answers * taskset.reward_minor,
                )
                if award is not None:
                    granted.append(
                        GrantedBonus(
                            row.worker_id, award.amount_minor, taskset.currency, award.reason
                        )
                    )
            await ensure_totals(session, [g.worker_id for g in granted], taskset.currency)
            await add_entries(
                session,
                [
                    {
                        "worker_id": bonus.worker_id,
                        "taskset_id": taskset_id,
                        "kind": LedgerKind.BONUS.value,
                        "amount_minor": bonus.amount_minor,
                        "currency": bonus.currency,
                        "created_at": now,
                        "available_at": available_from(now, taskset.hold_hours),
                        "note": bonus.reason,
                    }
                    for bonus in granted
                ],
            )
            return granted

    # ----------------------------------------------------------------- payouts

    async def list_payouts(self, min_minor: int, currency: str) -> PayoutListing:
        """A new batch of every worker whose available money, less what open batches already
        list, is at least ``min_minor``; the batch reserves those amounts, so no money is ever
        in two batches. None is made when nobody qualifies."""
        now = self.clock()
        async with self.sessions.begin() as session:
            await lock_payouts(session)
            available = (
                select(
                    LedgerEntry.worker_id,
                    whole_sum(LedgerEntry.amount_minor).label("available"),
                )
                .where(LedgerEntry.currency == currency, LedgerEntry.available_at <= now)
                .group_by(LedgerEntry.worker_id)
                .subquery()
            )
            reserved = (
                select(PayoutLine.worker_id, whole_sum(PayoutLine.amount_minor).label("reserved"))
                .join(PayoutBatch, PayoutBatch.id == PayoutLine.batch_id)
                .where(
                    PayoutBatch.currency == currency,
                    PayoutBatch.paid_at.is_(None),
                    PayoutBatch.cancelled_at.is_(None),
                )
                .group_by(PayoutLine.worker_id)
                .subquery()
            )
            amount = available.c.available - func.coalesce(reserved.c.reserved, 0)
            rows = (
                await session.execute(
                    select(Worker.id, Worker.display_name, amount.label("amount"))
                    .join(available, available.c.worker_id == Worker.id)
                    .outerjoin(reserved, reserved.c.worker_id == Worker.id)
                    .where(
                        Worker.status != WorkerStatus.DELETED,
                        amount >= max(min_minor, 1),
                    )
                    .order_by(Worker.id)
                )
            ).all()
            if not rows:
                return PayoutListing(None, currency, [])
            batch = PayoutBatch(currency=currency, min_minor=min_minor, created_at=now)
            session.add(batch)
            await session.flush()
            await session.execute(
                insert(PayoutLine),
                [
                    {"batch_id": batch.id, "worker_id": row.id, "amount_minor": int(row.amount)}
                    for row in rows
                ],
            )
            return PayoutListing(
                batch.id,
                currency,
                [
                    PayoutRow(row.id, row.display_name, int(row.amount), currency, batch.id)
                    for row in rows
                ],
            )

    async def mark_paid(self, rows: list[PayoutRow]) -> MarkedPaid | PayoutRefused:
        """Write a payout entry for each row of a payouts file, in one transaction, if and only
        if the file is exactly one open batch as it was listed and every worker still has the
        money available. A file already applied (or cancelled) is refused, as is any change."""
        batches = {row.batch_id for row in rows}
        if len(batches) != 1:
            return PayoutRefused(
                "the file holds no rows" if not rows else "the file mixes several batches"
            )
        (batch_id,) = batches
        now = self.clock()
        async with self.sessions.begin() as session:
            await lock_payouts(session)
            batch = await session.get(PayoutBatch, batch_id)
            if batch is None:
                return PayoutRefused(f"there is no payout batch {batch_id}")
            if batch.paid_at is not None:
                return PayoutRefused(
                    f"batch {batch_id} was already marked paid on {batch.paid_at:%Y-%m-%d %H:%M}"
                )
            if batch.cancelled_at is not None:
                return PayoutRefused(f"batch {batch_id} was cancelled")
            listed = {
                line.worker_id: line.amount_minor
                for line in await session.scalars(
                    select(PayoutLine).where(PayoutLine.batch_id == batch_id)
                )
            }
            in_file = {row.worker_id: row.amount_minor for row in rows}
            if len(in_file) != len(rows):
                return PayoutRefused("a worker appears twice in the file")
            if any(row.currency != batch.currency for row in rows):
                return PayoutRefused(f"batch {batch_id} is in {batch.currency}")
            if in_file != listed:
                changed = sorted(set(in_file.items()) ^ set(listed.items()))
                workers = ", ".join(str(worker) for worker in dict(changed))
                return PayoutRefused(
                    f"the amounts no longer match batch {batch_id} as it was listed "
                    f"(workers {workers})"
                )
            available: dict[int, int] = dict(
                (
                    await session.execute(
                        select(LedgerEntry.worker_id, whole_sum(LedgerEntry.amount_minor))
                        .where(
                            LedgerEntry.worker_id.in_(list(listed)),
                            LedgerEntry.currency == batch.currency,
                            LedgerEntry.available_at <= now,
                        )
                        .group_by(LedgerEntry.worker_id)
                    )
                ).all()
            )
            short = [w for w, amount in listed.items() if available.get(w, 0) < amount]
            if short:
                return PayoutRefused(
                    "the amounts no longer match what is available for workers "
                    + ", ".join(map(str, sorted(short)))
                )
            await add_entries(
                session,
                [
                    {
                        "worker_id": worker_id,
                        "kind": LedgerKind.PAYOUT.value,
                        "amount_minor": -amount,
                        "currency": batch.currency,
                        "created_at": now,
                        "available_at": now,
                        "payout_batch_id": batch_id,
                    }
                    for worker_id, amount in sorted(listed.items())
                ],
            )
            batch.paid_at = now
            return MarkedPaid(batch_id, len(listed), sum(listed.values()), batch.currency)

    async def cancel_payouts(self, batch_id: int) -> bool:
        """Give up a listed batch that was never paid, so its money can be listed again."""
        async with self.sessions.begin() as session:
            await lock_payouts(session)
            result = await session.execute(
                update(PayoutBatch)
                .where(
                    PayoutBatch.id == batch_id,
                    PayoutBatch.paid_at.is_(None),
                    PayoutBatch.cancelled_at.is_(None),
                )
                .values(cancelled_at=self.clock())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
