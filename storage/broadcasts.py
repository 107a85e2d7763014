"""The broadcast queue: who is to be told about a published task set, and who was.

Every recipient is a row with a delivery state. A process sends a broadcast only while it holds
the broadcast's runner lease, which it renews with every recipient; it claims a recipient
(``pending`` -> ``sending``) before sending and records the outcome in the same transaction that
claims the next one. So a broadcast interrupted by a restart resumes where it stopped and tells
nobody twice: a graceful stop records its last outcome and gives the lease back at once; a
process that died mid-send leaves one ``sending`` claim, which the next runner turns into
``unknown`` (Telegram may or may not have delivered it) and never sends again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import as_utc
from storage.models import (
    Broadcast,
    BroadcastRecipient,
    DeliveryState,
    Worker,
    WorkerStatus,
)

# How long a runner holds a broadcast without renewing it (it renews with every recipient);
# after that another process may take over a broadcast whose runner died.
RUNNER_LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class BroadcastJob:
    """A broadcast this process now runs."""

    id: int
    taskset_id: int
    chat_id: int  # the coordinator who published, who sees the progress
    progress_message_id: int | None
    total: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one claimed recipient."""

    worker_id: int
    state: DeliveryState
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The next recipient to send to; None when nobody is left. ``lost``: another process took
    the broadcast over (this one was too slow to renew), so stop."""

    worker_id: int | None
    lost: bool = False


@dataclass(frozen=True, slots=True)
class BroadcastProgress:
    total: int
    sent: int
    blocked: int
    failed: int  # refused, or unknown after a crash
    pending: int
    finished: bool

    @property
    def done(self) -> int:
        return self.sent + self.blocked + self.failed


class BroadcastQueue:
    """Units of work of the broadcast queue, each one transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        *,
        lease: timedelta = RUNNER_LEASE,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.lease = lease

    @staticmethod
    async def create(
        session: AsyncSession, taskset_id: int, chat_id: int, now: datetime
    ) -> tuple[int, int]:
        """Queue a message about ``taskset_id`` to every active worker who has not opted out,
        inside the caller's transaction (the one that publishes the set); returns the
        broadcast's id and its number of recipients."""
        broadcast = Broadcast(taskset_id=taskset_id, chat_id=chat_id, total=0, created_at=now)
        session.add(broadcast)
        await session.flush()
        recipients = select(
            literal(broadcast.id), Worker.id, literal(DeliveryState.PENDING.value)
        ).where(Worker.status == WorkerStatus.ACTIVE, Worker.notify.is_(True))
        result = await session.execute(
            insert(BroadcastRecipient).from_select(
                ["broadcast_id", "worker_id", "state"], recipients
            )
        )
        broadcast.total = int(result.rowcount)  # type: ignore[attr-defined]
        return broadcast.id, broadcast.total

    async def unfinished(self) -> list[int]:
        """Broadcasts still to send, oldest first (a runner may hold some of them)."""
        async with self.sessions() as session:
            ids = await session.scalars(
                select(Broadcast.id).where(Broadcast.finished_at.is_(None)).order_by(Broadcast.id)
            )
            return list(ids)

    async def take(self, broadcast_id: int, runner: str) -> BroadcastJob | None:
        """Become the runner of an unfinished broadcast nobody else holds; None if finished or
        held by a live runner. A claim left "sending" (by a runner that died, or by an attempt
        that failed midway) becomes ``unknown``: it may have been delivered, so it is never
        sent again."""
        now = self.clock()
        async with self.sessions.begin() as session:
            broadcast = await session.scalar(
                select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()
            )
            if broadcast is None or broadcast.finished_at is not None:
                return None
            held = broadcast.runner not in (None, runner)
            if held and broadcast.runner_until is not None and as_utc(broadcast.runner_until) > now:
                return None
            # A runner takes a broadcast with no send of its own in flight: a claim still
            # "sending" is left by a process that died, or by this one's own failed attempt.
            await session.execute(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast_id,
                    BroadcastRecipient.state == DeliveryState.SENDING,
                )
                .values(
                    state=DeliveryState.UNKNOWN,
                    detail="the send was interrupted",
                    updated_at=now,
                )
            )
            broadcast.runner, broadcast.runner_until = runner, now + self.lease
            return BroadcastJob(
                id=broadcast.id,
                taskset_id=broadcast.taskset_id,
                chat_id=broadcast.chat_id,
                progress_message_id=broadcast.progress_message_id,
                total=broadcast.total,
            )

    async def advance(
        self,
        broadcast_id: int,
        runner: str,
        outcome: Delivery | None,
        *,
        claim_next: bool = True,
    ) -> Claim:
        """Record what happened to the last claimed recipient, renew the runner lease, and
        claim the next recipient (``sending``) before it is sent to: one transaction."""
        now = self.clock()
        async with self.sessions.begin() as session:
            if outcome is not None:
                await session.execute(
                    update(BroadcastRecipient)
                    .where(
                        BroadcastRecipient.broadcast_id == broadcast_id,
                        BroadcastRecipient.worker_id == outcome.worker_id,
                        BroadcastRecipient.state.in_(
                            [DeliveryState.SENDING, DeliveryState.UNKNOWN]
                        ),
                    )
                    .values(state=outcome.state, detail=outcome.detail, updated_at=now)
                )
            renewed = await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.runner == runner)
                .values(runner_until=now + self.lease)
            )
            if not renewed.rowcount:  # type: ignore[attr-defined]
                return Claim(None, lost=True)
            if not claim_next:
                return Claim(None)
            following = (
                select(BroadcastRecipient.worker_id)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast_id,
                    BroadcastRecipient.state == DeliveryState.PENDING,
                )
                .order_by(BroadcastRecipient.worker_id)
                .limit(1)
                .scalar_subquery()
            )
            worker_id = await session.scalar(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast_id,
                    BroadcastRecipient.worker_id == following,
                )
                .values(state=DeliveryState.SENDING, updated_at=now)
                .returning(BroadcastRecipient.worker_id)
            )
            return Claim(worker_id)

    async def set_progress_message(self, broadcast_id: int, message_id: int) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id)
                .values(progress_message_id=message_id)
            )

    async def progress(self, broadcast_id: int) -> BroadcastProgress:
        async with self.sessions() as session:
            broadcast = await session.get(Broadcast, broadcast_id)
            rows = await session.execute(
                select(BroadcastRecipient.state, func.count())
                .where(BroadcastRecipient.broadcast_id == broadcast_id)
                .group_by(BroadcastRecipient.state)
            )
            counts = {DeliveryState(state): int(count) for state, count in rows}
        return BroadcastProgress(
            total=broadcast.total if broadcast else 0,
            sent=counts.get(DeliveryState.SENT, 0),
            blocked=counts.get(DeliveryState.BLOCKED, 0),
            failed=counts.get(DeliveryState.FAILED, 0) + counts.get(DeliveryState.UNKNOWN, 0),
            pending=counts.get(DeliveryState.PENDING, 0) + counts.get(DeliveryState.SENDING, 0),
            finished=broadcast is None or broadcast.finished_at is not None,
        )

    async def finish(self, broadcast_id: int, runner: str) -> bool:
        """Mark the broadcast done (nobody left to claim); False if another runner holds it."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.runner == runner)
                .values(finished_at=self.clock(), runner=None, runner_until=None)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, broadcast_id: int, runner: str) -> None:
        """Give the runner lease back (a graceful stop): the next process resumes at once."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.runner == runner)
                .values(runner=None, runner_until=None)
            )
