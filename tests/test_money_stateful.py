"""Stateful property test of the money: whatever happens, in whatever order, the books hold.

Hypothesis drives a crowd through answers (slow, or too fast to be believed), redelivered and
concurrent taps, undos (in time or too late, of the last answer or an older one), suspensions
(the speed rule) and reinstatements, the passing of hold periods, bonuses, payout listings,
payouts marked paid, replayed, tampered with or cancelled. After
every step, on SQLite and on PostgreSQL:

* every counter equals its recount from the rows (``consistency_violations``: ledger totals,
  tallies, rank buckets, reversals that cancel exactly, payouts equal to their batch);
* a balance is the sum of its entries: what /me shows (available, pending, paid) is recomputed
  from the ledger;
* nothing is credited twice (one reward per answer, one bonus per worker and set), and an
  undone answer's reward is reversed until it is answered again;
* nothing is paid twice (what the ledger paid is what the applied batches listed);
* no worker's available balance is ever negative.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storage.engine import create_engine, is_sqlite
from storage.ledger import MarkedPaid, PayoutRefused
from storage.models import Answer, AnswerKind, Base, LedgerEntry, LedgerKind, live_answer
from storage.results import Recorded, Rejected, ServedItem, Undone, UndoRefused
from storage.store import LabelStore
from tasksets.payouts import PayoutRow
from tests.conftest import Clock
from tests.factories import make_spec

T = TypeVar("T")
WORKERS = 3
REWARD_MINOR = 5
SLOW, FAST = timedelta(seconds=1.5), timedelta(seconds=0.05)
OpenStore = Callable[[Clock], Awaitable[LabelStore]]
STEPS = 30
EXAMPLES = 15  # per database, STEPS steps each: 20-50 s a database


@pytest.fixture
def open_empty_store(db_url: str, request: pytest.FixtureRequest) -> OpenStore:
    """A store on ``db_url`` emptied for each example (as in tests/test_invariants.py)."""
    template: Path | None = (
        request.getfixturevalue("sqlite_template") if is_sqlite(db_url) else None
    )

    async def open_empty(clock: Clock) -> LabelStore:
        if template is not None:
            path = Path(str(make_url(db_url).database))
            for stale in path.parent.glob(f"{path.name}-*"):
                stale.unlink()
            shutil.copy(template, path)
        store = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(11))
        if template is None:
            async with store.engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    await connection.execute(table.delete())
        return store

    return open_empty


class Books(RuleBasedStateMachine):
    open_store: OpenStore  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock(step=SLOW.total_seconds())
        self.store = self.run(self.open_store(self.clock))
        spec = make_spec(
            items=30,
            gold=6,
            overlap=2,
            reward="0.05",
            gold_ratio=0.2,
            hold_hours=2,
            bonus={"min_gold_accuracy": 0.5, "min_answers": 3, "percent": 10},
            quality={"min_median_seconds": 1.0, "min_answers_for_speed": 3},
        )
        self.taskset_id = self.run(self.store.load_taskset(spec))
        self.current: dict[int, ServedItem | None] = {}
        self.used: dict[int, list[str]] = {w: [] for w in range(WORKERS)}
        # (answer id, token answered) of each worker's answers: their Undo buttons.
        self.undos: dict[int, list[tuple[int, str]]] = {w: [] for w in range(WORKERS)}
        for worker in range(WORKERS):
            self.run(self.store.join(worker + 1, f"W{worker}", taskset_id=self.taskset_id))
            self.current[worker] = None
        self.listings: list[list[PayoutRow]] = []
        self.applied: set[int] = set()
        self.cancelled: set[int] = set()
        self.paid_minor = 0

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(step)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    async def item_for(self, worker: int) -> ServedItem | None:
        item = self.current[worker]
        if item is None:
            found = await self.store.next_item_for(worker + 1)
            item = found if isinstance(found, ServedItem) else None
        self.current[worker] = item
        return item

    # ------------------------------------------------------------------ the crowd

    @rule(worker=st.integers(0, WORKERS - 1), choice=st.integers(0, 3))
    def answer(self, worker: int, choice: int) -> None:
        self.run(self.tap(worker, choice))

    @rule(worker=st.integers(0, WORKERS - 1), count=st.integers(3, 8))
    def rush(self, worker: int, count: int) -> None:
        """Answers far too fast to read the items: the speed rule suspends the worker."""
        self.clock.step = FAST
        for _ in range(count):
            self.run(self.tap(worker, 0))
        self.clock.step = SLOW

    async def tap(self, worker: int, choice: int) -> None:
        item = await self.item_for(worker)
        if item is None:
            return
        outcome = await self.store.record_answer(
            item.token, worker + 1, "skip" if choice == 3 else choice
        )
        self.used[worker].append(item.token)
        if isinstance(outcome, Recorded):
            self.undos[worker].append((outcome.answer_id, item.token))
        if isinstance(outcome, Recorded) and outcome.status_change is not None:
            change = outcome.status_change
            event(f"{change.status}{' with money reversed' if change.reversed_minor else ''}")
        self.current[worker] = (
            outcome.next
            if isinstance(outcome, Recorded) and isinstance(outcome.next, ServedItem)
            else None
        )

    @rule(worker=st.integers(0, WORKERS - 1), pick=st.integers(0, 100))
    def redelivered(self, worker: int, pick: int) -> None:
        """An update Telegram delivers again, or a tap on an old button: nothing changes."""
        if not self.used[worker]:
            return
        token = self.used[worker][pick % len(self.used[worker])]
        outcome = self.run(self.store.record_answer(token, worker + 1, 0))
        assert isinstance(outcome, Rejected)

    @rule(worker=st.integers(0, WORKERS - 1))
    def double_tap(self, worker: int) -> None:
        """Two taps on one button at the same moment store one answer."""
        item = self.run(self.item_for(worker))
        if item is None:
            return

        async def both() -> list[Any]:
            return list(
                await asyncio.gather(
                    self.store.record_answer(item.token, worker + 1, 1),
                    self.store.record_answer(item.token, worker + 1, 1),
                )
            )

        outcomes = self.run(both())
        recorded = [o for o in outcomes if isinstance(o, Recorded)]
        assert len(recorded) <= 1
        self.used[worker].append(item.token)
        self.current[worker] = (
            recorded[0].next if recorded and isinstance(recorded[0].next, ServedItem) else None
        )

    @rule(worker=st.integers(0, WORKERS - 1), choice=st.integers(0, 3))
    def answer_and_undo(self, worker: int, choice: int) -> None:
        """A tap, then Undo at once: the answer and its reward are taken back."""
        self.answer(worker, choice)
        self.undo(worker, 0)

    @rule(worker=st.integers(0, WORKERS - 1), older=st.integers(0, 3))
    def undo(self, worker: int, older: int) -> None:
        """A tap on Undo: the last answer's, or an older button's (refused, or undone twice)."""
        if not self.undos[worker]:
            return
        answer_id, token = self.undos[worker][-1 - older % len(self.undos[worker])]
        outcome = self.run(self.store.undo_answer(answer_id, token, worker + 1))
        event(f"undo: {outcome.reason if isinstance(outcome, UndoRefused) else 'done'}")
        if isinstance(outcome, Undone):
            self.current[worker] = outcome.reopened

    @rule(worker=st.integers(0, WORKERS - 1))
    def reinstate(self, worker: int) -> None:
        if self.run(self.store.reinstate(worker + 1)):
            event("reinstated")
        self.current[worker] = None

    @rule(hours=st.integers(1, 3))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(hours=hours)

    @rule()
    def bonuses(self) -> None:
        self.run(self.store.ledger.grant_bonuses(self.taskset_id))

    # ------------------------------------------------------------------ payouts

    @rule(min_minor=st.integers(1, 30))
    def list_payouts(self, min_minor: int) -> None:
        listing = self.run(self.store.ledger.list_payouts(min_minor, "USD"))
        assert all(row.amount_minor >= min_minor for row in listing.rows)
        if listing.rows:
            self.listings.append(listing.rows)

    @rule(min_minor=st.integers(1, 30))
    def list_and_pay(self, min_minor: int) -> None:
        """A coordinator who pays at once what was listed."""
        self.list_payouts(min_minor)
        if self.listings:
            self.mark_paid(len(self.listings) - 1)

    @precondition(lambda self: self.listings)
    @rule(pick=st.integers(0, 100))
    def mark_paid(self, pick: int) -> None:
        rows = self.listings[pick % len(self.listings)]
        batch = rows[0].batch_id
        result = self.run(self.store.ledger.mark_paid(rows))
        if batch in self.applied or batch in self.cancelled:
            assert isinstance(result, PayoutRefused)  # a replay, or a listing given up
            return
        assert isinstance(result, MarkedPaid), result
        event("a batch paid")
        self.applied.add(batch)
        self.paid_minor += result.total_minor

    @precondition(lambda self: self.listings)
    @rule(pick=st.integers(0, 100), extra=st.integers(1, 50))
    def mark_paid_tampered(self, pick: int, extra: int) -> None:
        rows = list(self.listings[pick % len(self.listings)])
        first = rows[0]
        rows[0] = PayoutRow(
            first.worker_id, first.display_name, first.amount_minor + extra, "USD", first.batch_id
        )
        assert isinstance(self.run(self.store.ledger.mark_paid(rows)), PayoutRefused)

    @precondition(lambda self: self.listings)
    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        batch = self.listings[pick % len(self.listings)][0].batch_id
        cancelled = self.run(self.store.ledger.cancel_payouts(batch))
        assert cancelled == (batch not in self.applied and batch not in self.cancelled)
        if cancelled:
            self.cancelled.add(batch)

    # ---------------------------------------------------------------- invariants

    @invariant()
    def books_hold(self) -> None:
        step, self.clock.step = self.clock.step, timedelta(0)  # looking takes no time
        try:
            self.run(self.check())
        finally:
            self.clock.step = step

    async def check(self) -> None:
        violations = await self.store.consistency_violations()
        assert violations == dict.fromkeys(violations, 0)
        now = self.clock.now
        shown = {w: await self.store.ledger.balances(w) for w in range(1, WORKERS + 1)}
        # (SQLite: a session holds the write lock, so none is opened inside another.)
        async with self.store.sessions() as session:
            for worker in range(1, WORKERS + 1):
                of_worker = LedgerEntry.worker_id == worker
                available = await session.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                        of_worker, LedgerEntry.available_at <= now
                    )
                )
                pending = await session.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                        of_worker, LedgerEntry.available_at > now
                    )
                )
                assert int(available or 0) >= 0, f"worker {worker} owes money"
                for balance in shown[worker]:
                    assert balance.available_minor == int(available or 0)
                    assert balance.pending_minor == int(pending or 0)
            labeled = select(Answer.id).where(Answer.kind == AnswerKind.LABEL, live_answer())
            rewarded = await session.scalar(
                select(func.count(func.distinct(LedgerEntry.answer_id))).where(
                    LedgerEntry.kind == LedgerKind.REWARD.value, LedgerEntry.answer_id.in_(labeled)
                )
            )
            assert rewarded == await session.scalar(
                select(func.count()).select_from(labeled.subquery())
            )
            bonuses = await session.scalar(
                select(func.count()).where(LedgerEntry.kind == LedgerKind.BONUS.value)
            )
            bonus_workers = await session.scalar(
                select(func.count(func.distinct(LedgerEntry.worker_id))).where(
                    LedgerEntry.kind == LedgerKind.BONUS.value
                )
            )
            assert bonuses == bonus_workers
            paid = await session.scalar(
                select(func.coalesce(func.sum(-LedgerEntry.amount_minor), 0)).where(
                    LedgerEntry.kind == LedgerKind.PAYOUT.value
                )
            )
            assert int(paid or 0) == self.paid_minor


def test_the_books_hold_whatever_happens(open_empty_store: OpenStore) -> None:
    class Run(Books):
        open_store = staticmethod(open_empty_store)  # type: ignore[assignment]

    run_state_machine_as_test(
        Run,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
