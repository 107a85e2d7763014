"""A worker's standing as they see it: /me and /leaderboard, read from counters only.

The answer's transaction keeps ``tallies`` (accepted answers and gold score per worker, scope
and period) and ``rank_buckets`` (ranked workers per number of answers); see
``storage/statements/tallies.py``. So a board is a walk of ten rows of an index, a rank is a
sum over the buckets above plus the ties ahead, and /me reads a handful of rows: the cost does
not grow with the number of answers.

Names on the boards are pseudonyms, an HMAC of the Telegram id under a secret key
(``LABELBOT_PSEUDONYM_SECRET``, else generated once and kept in ``app_secrets``), unless the
worker chose to show their first name (/settings).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from storage.driver import Transaction
from storage.models import (
    AppSecret,
    Membership,
    MembershipStatus,
    RankBucket,
    Tally,
    Worker,
)
from storage.statements.ledger import (
    HIDE_EVERYWHERE,
    HIDE_IN_SET,
    JOIN_BUCKETS_IN_SET,
    LEAVE_ALL_BUCKETS,
    LEAVE_BUCKETS_IN_SET,
    whole_sum,
)
from storage.statements.tallies import ALL_SETS
from tasksets.standing import (
    CHART_DAYS,
    EPOCH,
    PPM,
    Level,
    Period,
    accuracy_ppm,
    level,
    period_start,
    pseudonym,
)

BOARD_SIZE = 10
PSEUDONYM_SECRET = "pseudonym"


# ------------------------------------------------------ leaving and rejoining the boards


async def leave_boards(tx: Transaction, worker_id: int, taskset_id: int) -> None:
    """Take the worker off a set's leaderboards (a suspension), in the caller's transaction."""
    params = {"worker": worker_id, "in_scope": taskset_id}
    await tx.run(LEAVE_BUCKETS_IN_SET, params)
    await tx.run(HIDE_IN_SET, {**params, "hide": True})


async def rejoin_boards(tx: Transaction, worker_id: int, taskset_id: int) -> None:
    """Put the worker back on a set's leaderboards (a reinstatement)."""
    params = {"worker": worker_id, "in_scope": taskset_id}
    await tx.run(JOIN_BUCKETS_IN_SET, params)
    await tx.run(HIDE_IN_SET, {**params, "hide": False})


async def leave_all_boards(tx: Transaction, worker_id: int) -> None:
    """Take the worker off every leaderboard for good (their data was erased)."""
    await tx.run(LEAVE_ALL_BUCKETS, {"worker": worker_id})
    await tx.run(HIDE_EVERYWHERE, {"worker": worker_id, "hide": True})


# ----------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class BoardRow:
    rank: int
    worker_id: int
    name: str
    answers: int
    accuracy: float  # smoothed gold accuracy


@dataclass(frozen=True, slots=True)
class Place:
    """The caller's place on a board: their rank and how far the next place up is."""

    rank: int
    answers: int
    accuracy: float
    # The place just above (None at the top) and how many answers it has more.
    next_rank: int | None
    gap: int | None


@dataclass(frozen=True, slots=True)
class Unranked:
    """The caller has answers in the period but too few control answers to be ranked."""

    answers: int
    control_answers: int
    control_needed: int


@dataclass(frozen=True, slots=True)
class Board:
    scope: int  # a task set's id, or 0 for all sets
    period: Period
    start: date
    rows: list[BoardRow]
    ranked: int  # how many workers the board ranks
    caller: Place | Unranked | None  # None: no accepted answer in the period yet


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    answers: int
    gold_answers: int
    gold_correct: int


@dataclass(frozen=True, slots=True)
class MyNumbers:
    """What /me shows about the current set (money comes from the ledger)."""

    status: MembershipStatus
    status_reason: str | None
    answers_today: int
    answers_total: int
    gold_answers: int
    gold_correct: int
    accuracy: float
    place: Place | Unranked | None
    ranked: int
    level: Level


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    public_name: str | None  # the first name shown on the boards; None: the pseudonym
    pseudonym: str
    notify: bool  # messages about new task sets


def as_accuracy(ppm: int) -> float:
    return ppm / PPM


# ------------------------------------------------------------------------ the service


class Standing:
    """The reads behind /me, /leaderboard and the chart; reached as ``store.standing``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        *,
        pseudonym_secret: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self._key = pseudonym_secret.encode() if pseudonym_secret else None

    # ------------------------------------------------------------------ names

    async def pseudonym_key(self) -> bytes:
        """The key of the pseudonyms: the configured secret, or the one this database keeps
        (generated by whichever process asks first; every process then reads the same)."""
        if self._key is None:
            async with self.sessions.begin() as session:
                await session.execute(
                    upsert(AppSecret)
                    .values(
                        name=PSEUDONYM_SECRET,
                        value=secrets.token_hex(32),
                        created_at=self.clock(),
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                value = await session.scalar(
                    select(AppSecret.value).where(AppSecret.name == PSEUDONYM_SECRET)
                )
            assert value is not None
            self._key = value.encode()
        return self._key

    async def public_name(self, worker_id: int, chosen: str | None) -> str:
        """The name a worker has on the boards: their first name if they chose to show it."""
        return chosen or pseudonym(await self.pseudonym_key(), worker_id)

    async def settings(self, worker_id: int) -> WorkerSettings | None:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Worker.public_name, Worker.notify).where(Worker.id == worker_id)
                )
            ).first()
        if row is None:
            return None
        return WorkerSettings(
            public_name=row.public_name,
            pseudonym=pseudonym(await self.pseudonym_key(), worker_id),
            notify=bool(row.notify),
        )

    async def show_name(self, worker_id: int, first_name: str | None) -> bool:
        """Show this first name on the boards (None: go back to the pseudonym)."""
        name = first_name.strip()[:64] if first_name and first_name.strip() else None
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Worker).where(Worker.id == worker_id).values(public_name=name)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_notify(self, worker_id: int, on: bool) -> bool:
        """Messages about new task sets on or off."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Worker).where(Worker.id == worker_id).values(notify=on)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ boards

    async def board(self, scope: int, period: Period, caller: int) -> Board:
        """The top ten of a set (``scope`` its id) or of all sets (0) in a period, and the
        caller's own place however far down."""
        start = period_start(period, self.clock())
        async with self.sessions() as session:
            top = (
                await session.execute(
                    select(Tally.worker_id, Tally.answers, Tally.accuracy_ppm, Worker.public_name)
                    .join(Worker, Worker.id == Tally.worker_id)
                    .where(*_ranked(scope, period, start))
                    .order_by(Tally.answers.desc(), Tally.accuracy_ppm.desc(), Tally.worker_id)
                    .limit(BOARD_SIZE)
                )
            ).all()
            place, ranked = await _place(session, scope, period, start, caller)
        key = await self.pseudonym_key()
        rows = [
            BoardRow(
                rank=index,
                worker_id=row.worker_id,
                name=row.public_name or pseudonym(key, row.worker_id),
                answers=row.answers,
                accuracy=as_accuracy(row.accuracy_ppm),
            )
            for index, row in enumerate(top, 1)
        ]
        return Board(scope, period, start, rows, ranked, place)

    # ---------------------------------------------------------------------- /me

    async def my_numbers(self, worker_id: int, taskset_id: int) -> MyNumbers | None:
        """The worker's numbers in a set; None when they have not joined it."""
        today = period_start(Period.DAY, self.clock())
        async with self.sessions() as session:
            member = (
                await session.execute(
                    select(Membership.status, Membership.status_reason).where(
                        Membership.worker_id == worker_id, Membership.taskset_id == taskset_id
                    )
                )
            ).first()
            if member is None:
                return None
            tallies = {
                (row.scope, row.period): row
                for row in await session.execute(
                    select(
                        Tally.scope,
                        Tally.period,
                        Tally.answers,
                        Tally.gold_answers,
                        Tally.gold_correct,
                        Tally.accuracy_ppm,
                    ).where(
                        Tally.worker_id == worker_id,
                        Tally.scope.in_([taskset_id, ALL_SETS]),
                        or_(
                            and_(Tally.period == Period.DAY.value, Tally.start == today),
                            and_(Tally.period == Period.ALL.value, Tally.start == EPOCH),
                        ),
                    )
                )
            }
            place, ranked = await _place(session, taskset_id, Period.ALL, EPOCH, worker_id)
        in_set = tallies.get((taskset_id, Period.ALL.value))
        today_row = tallies.get((taskset_id, Period.DAY.value))
        overall = tallies.get((ALL_SETS, Period.ALL.value))
        gold_answers = in_set.gold_answers if in_set else 0
        gold_correct = in_set.gold_correct if in_set else 0
        return MyNumbers(
            status=member.status,
            status_reason=member.status_reason,
            answers_today=today_row.answers if today_row else 0,
            answers_total=in_set.answers if in_set else 0,
            gold_answers=gold_answers,
            gold_correct=gold_correct,
            accuracy=as_accuracy(in_set.accuracy_ppm) if in_set else _prior_accuracy(),
            place=place,
            ranked=ranked,
            level=level(
                overall.answers if overall else 0,
                overall.gold_correct if overall else 0,
                overall.gold_answers if overall else 0,
            ),
        )

    async def last_days(self, worker_id: int, days: int = CHART_DAYS) -> list[DayCount]:
        """Accepted answers and gold score per UTC day over the last ``days`` days (all sets),
        oldest first, days without answers included as zeros."""
        today = period_start(Period.DAY, self.clock())
        first = today - timedelta(days=days - 1)
        async with self.sessions() as session:
            rows = {
                row.start: row
                for row in await session.scalars(
                    select(Tally).where(
                        Tally.worker_id == worker_id,
                        Tally.scope == ALL_SETS,
                        Tally.period == Period.DAY.value,
                        Tally.start >= first,
                        Tally.start <= today,
                    )
                )
            }
        counts = []
        for offset in range(days):
            day = first + timedelta(days=offset)
            row = rows.get(day)
            counts.append(
                DayCount(
                    day,
                    row.answers if row else 0,
                    row.gold_answers if row else 0,
                    row.gold_correct if row else 0,
                )
            )
        return counts


def _prior_accuracy() -> float:
    return as_accuracy(accuracy_ppm(0, 0))


def _ranked(scope: int, period: Period, start: date) -> list[Any]:
    """The tallies a board ranks: visible, with enough control answers."""
    return [
        Tally.scope == scope,
        Tally.period == period.value,
        Tally.start == start,
        ~Tally.hidden,  # NOT hidden / hidden = 0: as ix_tallies_rank's predicate says
        Tally.gold_answers >= Tally.min_control,
    ]


def place_query(scope: int, period: Period, start: date, worker_id: int) -> Any:
    """One statement for the caller's place: how many the board ranks, the caller's tally, and
    what a rank needs: the ranked workers with more answers (summed from the buckets above, not
    counted), the ties ahead (as many answers and a better accuracy, or the same and a lower
    id), and the answers of the next place up. It is the same statement whether or not the
    caller is ranked, so every caller costs the same."""
    buckets = (
        RankBucket.scope == scope,
        RankBucket.period == period.value,
        RankBucket.start == start,
    )
    mine = (
        select(Tally)
        .where(
            Tally.worker_id == worker_id,
            Tally.scope == scope,
            Tally.period == period.value,
            Tally.start == start,
        )
        .cte("mine")
    )
    other = aliased(Tally)
    ranked_other = [
        other.scope == scope,
        other.period == period.value,
        other.start == start,
        ~other.hidden,
        other.gold_answers >= other.min_control,
    ]
    # Only a ranked caller needs a rank: a constant filter spares the others the walks.
    caller_ranked = and_(~mine.c.hidden, mine.c.gold_answers >= mine.c.min_control)
    base = select(literal(1).label("one")).subquery("base")
    return select(
        select(whole_sum(RankBucket.workers)).where(*buckets).scalar_subquery().label("ranked"),
        mine.c.answers,
        mine.c.gold_answers,
        mine.c.min_control,
        mine.c.hidden,
        mine.c.accuracy_ppm,
        select(whole_sum(RankBucket.workers))
        .where(*buckets, RankBucket.answers > mine.c.answers, caller_ranked)
        .scalar_subquery()
        .label("above"),
        select(func.count())
        .select_from(other)
        .where(
            *ranked_other,
            caller_ranked,
            other.answers == mine.c.answers,
            # A range of the index (better accuracy first), then the lower ids among equals.
            other.accuracy_ppm >= mine.c.accuracy_ppm,
            or_(
                other.accuracy_ppm > mine.c.accuracy_ppm,
                other.worker_id < mine.c.worker_id,
            ),
        )
        .scalar_subquery()
        .label("ties"),
        select(other.answers)
        .where(*ranked_other, caller_ranked, other.answers > mine.c.answers)
        .order_by(other.answers, other.accuracy_ppm, other.worker_id.desc())
        .limit(1)
        .scalar_subquery()
        .label("next_answers"),
    ).select_from(base.outerjoin(mine, true()))


async def _place(
    session: AsyncSession, scope: int, period: Period, start: date, worker_id: int
) -> tuple[Place | Unranked | None, int]:
    """The worker's place on a board (None without a visible tally) and how many it ranks."""
    row = (await session.execute(place_query(scope, period, start, worker_id))).one()
    ranked = int(row.ranked)
    if row.answers is None or row.hidden:
        return None, ranked
    if row.gold_answers < row.min_control:
        return Unranked(row.answers, row.gold_answers, row.min_control), ranked
    rank = 1 + int(row.above) + int(row.ties)
    # The place just above: one of the ties ahead, else the one with the fewest answers above.
    next_answers = row.answers if row.ties else row.next_answers
    return (
        Place(
            rank=rank,
            answers=row.answers,
            accuracy=as_accuracy(row.accuracy_ppm),
            next_rank=rank - 1 if rank > 1 else None,
            gap=next_answers - row.answers if rank > 1 and next_answers is not None else None,
        ),
        ranked,
    )
