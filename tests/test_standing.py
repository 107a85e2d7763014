"""Leaderboards and /me from the counters, on both databases: periods that turn over at UTC
midnight and on Mondays, the caller's place however far down, ties, who is ranked, and keyed
pseudonyms."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, date, datetime, timedelta

from storage.engine import create_engine
from storage.results import Recorded, ServedItem
from storage.standing import Place, Unranked
from storage.store import LabelStore
from tasksets.standing import Period, pseudonym
from tests.conftest import Clock
from tests.factories import make_spec

SUNDAY_NIGHT = datetime(2026, 1, 4, 23, 58, tzinfo=UTC)  # the last minutes of a week
MONDAY = date(2026, 1, 5)


async def answer(store: LabelStore, worker: int, count: int) -> None:
    result = await store.next_item_for(worker)
    for _ in range(count):
        assert isinstance(result, ServedItem)
        outcome = await store.record_answer(result.token, worker, 0)
        assert isinstance(outcome, Recorded)
        result = outcome.next


def ranking(board: object) -> list[tuple[int, int]]:
    return [(row.worker_id, row.answers) for row in board.rows]  # type: ignore[attr-defined]


async def test_today_and_this_week_turn_over_at_midnight_and_on_monday(
    store: LabelStore, clock: Clock
) -> None:
    taskset_id = await store.load_taskset(make_spec(items=20, overlap=3))
    for worker in (1, 2):
        await store.join(worker, f"W{worker}", taskset_id=taskset_id)
    clock.now, clock.step = SUNDAY_NIGHT, timedelta(seconds=1)
    await answer(store, 1, 3)  # on Sunday
    assert ranking(await store.standing.board(taskset_id, Period.DAY, 1)) == [(1, 3)]
    assert ranking(await store.standing.board(taskset_id, Period.WEEK, 1)) == [(1, 3)]

    clock.now = datetime(2026, 1, 5, 0, 0, 10, tzinfo=UTC)
    await answer(store, 2, 2)  # on Monday: a new day and a new week
    for period in (Period.DAY, Period.WEEK):
        board = await store.standing.board(taskset_id, period, 1)
        assert board.start == MONDAY
        assert ranking(board) == [(2, 2)]
        assert board.caller is None  # worker 1 has no answer in this period yet
    board = await store.standing.board(taskset_id, Period.ALL, 2)
    assert ranking(board) == [(1, 3), (2, 2)]
    assert board.caller == Place(2, 2, board.rows[1].accuracy, next_rank=1, gap=1)
    # The board of all sets asks for control answers whatever the set: none here.
    overall = await store.standing.board(0, Period.ALL, 2)
    assert overall.rows == [] and overall.caller == Unranked(2, 0, 3)

    mine = await store.standing.my_numbers(1, taskset_id)
    assert mine is not None and (mine.answers_today, mine.answers_total) == (0, 3)
    days = await store.standing.last_days(1)
    assert len(days) == 14 and days[-1].day == MONDAY
    assert [(d.day, d.answers) for d in days[-2:]] == [(MONDAY - timedelta(days=1), 3), (MONDAY, 0)]


async def test_own_place_is_shown_far_below_the_top_ten(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=40, overlap=13))
    for worker in range(1, 14):
        await store.join(worker, f"W{worker}", taskset_id=taskset_id)
        await answer(store, worker, max(1, 13 - worker))  # 12, 11, ..., 1, and 1 again
    board = await store.standing.board(taskset_id, Period.ALL, 12)
    assert [row.rank for row in board.rows] == list(range(1, 11))
    assert ranking(board)[0] == (1, 12) and ranking(board)[-1] == (10, 3)
    assert board.ranked == 13
    assert board.caller == Place(12, 1, board.rows[0].accuracy, next_rank=11, gap=1)
    # A tie on answers and accuracy goes to the lower id: worker 13 is right behind 12.
    tied = await store.standing.board(taskset_id, Period.ALL, 13)
    assert isinstance(tied.caller, Place) and (tied.caller.rank, tied.caller.gap) == (13, 0)


async def test_a_set_with_gold_ranks_only_workers_with_enough_control_answers(
    store: LabelStore,
) -> None:
    taskset_id = await store.load_taskset(make_spec(items=10, gold=3, gold_ratio=0.0))
    await store.join(1, "W1", taskset_id=taskset_id)
    await answer(store, 1, 2)
    board = await store.standing.board(taskset_id, Period.ALL, 1)
    assert board.rows == [] and board.ranked == 0
    assert board.caller == Unranked(answers=2, control_answers=0, control_needed=3)


async def test_pseudonyms_are_keyed_stable_and_opt_out(db_url: str, clock: Clock) -> None:
    first = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(1))
    second = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(2))
    keyed = LabelStore(create_engine(db_url), clock=clock, pseudonym_secret="a-configured-key")
    try:
        taskset_id = await first.load_taskset(make_spec(items=5, overlap=2))
        await first.join(424242, "Ann Lee", taskset_id=taskset_id)
        await answer(first, 424242, 1)
        [row] = (await first.standing.board(taskset_id, Period.ALL, 1)).rows
        # The key was generated once and kept: another process derives the same name.
        [again] = (await second.standing.board(taskset_id, Period.ALL, 1)).rows
        assert row.name == again.name and row.name.startswith("Worker ")
        unkeyed = hashlib.blake2s(b"424242", digest_size=3).hexdigest().upper()
        assert row.name != f"Worker {unkeyed}"
        assert row.name == pseudonym(await first.standing.pseudonym_key(), 424242)
        [configured] = (await keyed.standing.board(taskset_id, Period.ALL, 1)).rows
        assert configured.name == pseudonym(b"a-configured-key", 424242) != row.name
        # Opting in shows the first name; opting out brings the pseudonym back.
        await first.standing.show_name(424242, "Ann")
        assert [r.name for r in (await first.standing.board(taskset_id, Period.ALL, 1)).rows] == [
            "Ann"
        ]
        await first.standing.show_name(424242, None)
        assert (await first.standing.board(taskset_id, Period.ALL, 1)).rows[0].name == row.name
    finally:
        for store in (first, second, keyed):
            await store.close()
