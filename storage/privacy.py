"""A worker's personal data: everything stored about them (/mydata), and erasing it (/delete).

Erasing keeps the work and the money consistent: the worker's answers, ledger, standing and
tallies move to an anonymous stand-in (a negative id no Telegram user has, status
``deleted``), off every leaderboard, and the worker's own row, with their name, username and
language, is deleted. Datasets keep their labels and the ledger keeps balancing, but nothing
ties either to the person any more; the same Telegram account coming back starts afresh.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.labeling import Labeling
from storage.models import (
    Answer,
    Assignment,
    Dispute,
    Item,
    LedgerAdjustment,
    LedgerEntry,
    LedgerTotal,
    Membership,
    PayoutLine,
    Review,
    Tally,
    TaskSet,
    Worker,
    WorkerStatus,
)
from storage.session_tx import SessionTransaction
from storage.standing import leave_all_boards
from tasksets.payouts import amount_text

ERASED_NAME = "erased"
# The tables whose rows stay, under the stand-in's id.
KEPT = (
    Assignment,
    Answer,
    Membership,
    LedgerEntry,
    LedgerAdjustment,
    LedgerTotal,
    PayoutLine,
    Review,
    Tally,
)


@dataclass(frozen=True, slots=True)
class Erased:
    """What /delete kept (anonymised) and the money the worker leaves unpaid."""

    answers: int
    ledger_entries: int
    unpaid: dict[str, int]  # currency -> minor units never paid out


class Privacy:
    """Reached as ``store.privacy``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        labeling: Labeling,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.labeling = labeling
        self.clock = clock

    async def export(self, worker_id: int) -> dict[str, Any] | None:
        """Everything stored about the worker, as plain data for a JSON file; None for
        someone the bot does not know."""
        async with self.sessions() as session:
            worker = await session.get(Worker, worker_id)
            if worker is None:
                return None
            names: dict[int | None, str] = dict(
                (await session.execute(select(TaskSet.id, TaskSet.name))).all()
            )
            data: dict[str, Any] = {
                "profile": {
                    "telegram_id": worker.id,
                    "name": worker.display_name,
                    "username": worker.username,
                    "language": worker.language,
                    "status": worker.status,
                    "joined_at": worker.joined_at,
                    "current_taskset": names.get(worker.current_taskset_id),
                    "leaderboard_name": worker.public_name,
                    "new_taskset_messages": worker.notify,
                },
                "memberships": [
                    {
                        "taskset": names.get(m.taskset_id),
                        "status": m.status,
                        "reason": m.status_reason,
                        "answers": m.answers,
                        "control_answers": m.gold_answers,
                        "control_correct": m.gold_correct,
                        "reviewer": m.reviewer,
                        "joined_at": m.joined_at,
                    }
                    for m in await session.scalars(
                        select(Membership)
                        .where(Membership.worker_id == worker_id)
                        .order_by(Membership.joined_at)
                    )
                ],
                "answers": [
                    {
                        "taskset": names.get(row.taskset_id),
                        "item": row.external_id,
                        "kind": row.kind,
                        "label": row.label,
                        "seconds": row.seconds,
                        "answered_at": row.created_at,
                        "not_sure_reason": row.reason,
                        "undone_at": row.withdrawn_at,
                    }
                    for row in await session.execute(
                        select(
                            Answer.taskset_id,
                            Item.external_id,
                            Answer.kind,
                            Answer.label,
                            Answer.seconds,
                            Answer.created_at,
                            Answer.reason,
                            Answer.withdrawn_at,
                        )
                        .join(Item, Item.id == Answer.item_id)
                        .where(Answer.worker_id == worker_id)
                        .order_by(Answer.id)
                    )
                ],
                "ledger": [
                    {
                        "id": entry.id,
                        "kind": entry.kind,
                        "amount": amount_text(entry.amount_minor, entry.currency),
                        "currency": entry.currency,
                        "created_at": entry.created_at,
                        "available_at": entry.available_at,
                        "taskset": names.get(entry.taskset_id),
                        "reverses": entry.reverses_id,
                        "payout_batch": entry.payout_batch_id,
                        "reason": entry.note or reason,
                    }
                    for entry, reason in (
                        await session.execute(
                            select(LedgerEntry, LedgerAdjustment.reason)
                            .outerjoin(
                                LedgerAdjustment,
                                LedgerAdjustment.id == LedgerEntry.adjustment_id,
                            )
                            .where(LedgerEntry.worker_id == worker_id)
                            .order_by(LedgerEntry.id)
                        )
                    ).all()
                ],
                "disputes": [
                    {
                        "taskset": names.get(row.taskset_id),
                        "item": row.external_id,
                        "reason": row.reason,
                        "status": row.status,
                        "created_at": row.created_at,
                    }
                    for row in await session.execute(
                        select(
                            Answer.taskset_id,
                            Item.external_id,
                            Dispute.reason,
                            Dispute.status,
                            Dispute.created_at,
                        )
                        .join(Answer, Answer.id == Dispute.answer_id)
                        .join(Item, Item.id == Answer.item_id)
                        .where(Answer.worker_id == worker_id)
                        .order_by(Dispute.id)
                    )
                ],
                "reviews": [
                    {
                        "taskset": names.get(row.taskset_id),
                        "item": row.external_id,
                        "verdict": row.verdict,
                        "corrected_label": row.corrected_label,
                        "corrected_text": row.corrected_text,
                        "reviewed_at": row.reviewed_at,
                    }
                    for row in await session.execute(
                        select(
                            Review.taskset_id,
                            Item.external_id,
                            Review.verdict,
                            Review.corrected_label,
                            Review.corrected_text,
                            Review.reviewed_at,
                        )
                        .join(Answer, Answer.id == Review.answer_id)
                        .join(Item, Item.id == Answer.item_id)
                        .where(Review.worker_id == worker_id, Review.verdict.is_not(None))
                        .order_by(Review.id)
                    )
                ],
                "daily_counts": [
                    {
                        "taskset": names.get(t.scope) if t.scope else None,
                        "day": t.start,
                        "answers": t.answers,
                        "control_answers": t.gold_answers,
                        "control_correct": t.gold_correct,
                    }
                    for t in await session.scalars(
                        select(Tally)
                        .where(Tally.worker_id == worker_id, Tally.period == "d")
                        .order_by(Tally.start, Tally.scope)
                    )
                ],
            }
        return data

    async def erase(self, worker_id: int) -> Erased | None:
        """Erase the worker's personal data and keep their work anonymised (see the module's
        description); None for someone the bot does not know (erased already)."""
        # Their item on screen goes back to the pool first (the driver's own transaction).
        await self.labeling.mark_inactive(worker_id)
        for _attempt in range(3):
            try:
                return await self._erase(worker_id, stand_in=-(secrets.randbelow(2**62) + 1))
            except IntegrityError:  # the random stand-in id was taken: draw again
                continue
        raise RuntimeError("could not draw a free stand-in id")

    async def _erase(self, worker_id: int, *, stand_in: int) -> Erased | None:
        now = self.clock()
        async with self.sessions.begin() as session:
            worker = await session.get(Worker, worker_id, with_for_update=True)
            if worker is None:
                return None
            answers = await _count(session, Answer, worker_id)
            entries = await _count(session, LedgerEntry, worker_id)
            unpaid = dict(
                (
                    await session.execute(
                        select(LedgerTotal.currency, LedgerTotal.total_minor).where(
                            LedgerTotal.worker_id == worker_id, LedgerTotal.total_minor != 0
                        )
                    )
                ).all()
            )
            await session.execute(
                insert(Worker).values(
                    id=stand_in,
                    display_name=ERASED_NAME,
                    status=WorkerStatus.DELETED,
                    joined_at=now,
                    notify=False,
                )
            )
            await leave_all_boards(SessionTransaction(session), worker_id)
            for model in KEPT:
                await session.execute(
                    update(model)
                    .where(model.worker_id == worker_id)
                    .values(worker_id=stand_in)
                    .execution_options(synchronize_session=False)
                )
            # A dispute's or a "not sure" reason is the worker's own free text: it may say who
            # they are.
            await session.execute(
                update(Dispute)
                .where(Dispute.answer_id.in_(select(Answer.id).where(Answer.worker_id == stand_in)))
                .values(reason=None)
            )
            await session.execute(
                update(Answer)
                .where(Answer.worker_id == stand_in, Answer.reason.is_not(None))
                .values(reason=None)
                .execution_options(synchronize_session=False)
            )
            await session.execute(delete(Worker).where(Worker.id == worker_id))
        return Erased(answers, entries, {c: int(v) for c, v in unpaid.items()})


async def _count(session: AsyncSession, model: Any, worker_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(model).where(model.worker_id == worker_id)
        )
        or 0
    )
