"""Storage units of work, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from storage.engine import create_engine
from storage.loading import TaskSetExists
from storage.models import Answer, Item, LedgerEntry, TaskSetStatus
from storage.results import NoItem, NoItemReason, Recorded, Rejected, Rejection, ServedItem
from storage.store import LabelStore
from tests.conftest import Clock
from tests.factories import make_spec


async def join(store: LabelStore, worker_id: int, taskset_id: int | None = None) -> None:
    assert await store.join(worker_id, f"Worker {worker_id}", taskset_id=taskset_id) is not None


async def serve(store: LabelStore, worker_id: int) -> ServedItem:
    result = await store.next_item_for(worker_id)
    assert isinstance(result, ServedItem), result
    return result


async def count(store: LabelStore, query: object) -> int:
    async with store.sessions() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def label_everything(store: LabelStore, workers: list[int]) -> dict[int, list[str]]:
    """Each worker labels until told all is done; returns the item texts each one saw."""
    seen: dict[int, list[str]] = {w: [] for w in workers}
    current = {w: await store.next_item_for(w) for w in workers}
    while any(isinstance(result, ServedItem) for result in current.values()):
        for worker_id, result in current.items():
            if isinstance(result, ServedItem):
                seen[worker_id].append(result.text or "")
                outcome = await store.record_answer(result.token, worker_id, 0)
                assert isinstance(outcome, Recorded)
                current[worker_id] = outcome.next
    for result in current.values():
        assert isinstance(result, NoItem) and result.reason == NoItemReason.ALL_DONE
    return seen


async def test_three_workers_overlap_two_label_every_item_exactly_twice(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=20, overlap=2))
    for worker_id in (1, 2, 3):
        await join(store, worker_id)

    seen = await label_everything(store, [1, 2, 3])

    for texts in seen.values():
        assert len(texts) == len(set(texts)), "a worker saw an item twice"
    per_item = await count(store, select(func.count()).select_from(Answer))
    assert per_item == 40
    async with store.sessions() as session:
        counts = set(await session.scalars(select(Item.answer_count)))
    assert counts == {2}


async def test_started_items_are_finished_first(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=5, overlap=3))
    await join(store, 1)
    await join(store, 2)
    first = await serve(store, 1)
    await store.record_answer(first.token, 1, 0)
    # Worker 2 gets the item worker 1 started, not the next fresh one.
    assert (await serve(store, 2)).text == first.text


async def test_repeated_tap_changes_nothing(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=1))
    await join(store, 1)
    item = await serve(store, 1)

    first = await store.record_answer(item.token, 1, 1)
    again = await store.record_answer(item.token, 1, 0)

    assert isinstance(first, Recorded) and first.chosen == "negative"
    assert isinstance(again, Rejected) and again.reason == Rejection.DUPLICATE
    assert again.chosen == "negative"  # what was recorded, for showing it again
    assert again.seconds_since_answer is not None and again.seconds_since_answer > 0
    assert await count(store, select(func.count()).select_from(Answer)) == 1
    assert await count(store, select(func.sum(LedgerEntry.amount_minor))) == 2


async def test_forged_and_foreign_buttons_are_rejected(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=2))
    await join(store, 1)
    await join(store, 2)
    item = await serve(store, 1)

    assert await store.record_answer("nosuchtoken1234", 1, 0) == Rejected(Rejection.FORGED)
    assert await store.record_answer(item.token, 2, 0) == Rejected(Rejection.FOREIGN)
    assert await store.record_answer(item.token, 1, 7) == Rejected(Rejection.FORGED)
    assert await count(store, select(func.count()).select_from(Answer)) == 0
    assert isinstance(await store.record_answer(item.token, 1, 2), Recorded)


async def test_next_item_repeats_the_live_lease(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=1))
    await join(store, 1)
    first = await serve(store, 1)
    assert (await serve(store, 1)).token == first.token


async def test_skip_does_not_count_toward_overlap(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=1, overlap=1))
    await join(store, 1)
    await join(store, 2)
    item = await serve(store, 1)
    outcome = await store.record_answer(item.token, 1, "skip")
    assert isinstance(outcome, Recorded) and outcome.chosen == "Skipped"
    assert isinstance(outcome.next, NoItem)  # worker 1 has seen the only item
    assert (await serve(store, 2)).text == item.text  # still needs a real answer
    assert await count(store, select(func.count()).select_from(LedgerEntry)) == 0


async def test_unanswered_lease_expires_and_item_returns_to_pool(
    store: LabelStore, clock: Clock
) -> None:
    await store.load_taskset(make_spec(items=1, overlap=1))
    await join(store, 1)
    await join(store, 2)
    abandoned = await serve(store, 1)
    assert await store.next_item_for(2) == NoItem(
        NoItemReason.ALL_DONE, await store.view(abandoned.taskset.id)
    )

    clock.advance(minutes=11)
    assert await store.expire_leases() == 1
    taken = await serve(store, 2)
    assert taken.text == abandoned.text
    assert isinstance(await store.record_answer(taken.token, 2, 0), Recorded)
    # Worker 1 comes back and taps the old button: the item went to someone else.
    assert await store.record_answer(abandoned.token, 1, 0) == Rejected(Rejection.EXPIRED)
    assert await count(store, select(func.count()).select_from(Answer)) == 1


async def test_late_answer_is_kept_while_the_item_still_needs_one(
    store: LabelStore, clock: Clock
) -> None:
    await store.load_taskset(make_spec(items=1, overlap=2))
    await join(store, 1)
    item = await serve(store, 1)
    clock.advance(minutes=30)
    await store.expire_leases()
    assert isinstance(await store.record_answer(item.token, 1, 0), Recorded)
    async with store.sessions() as session:
        row = (await session.execute(select(Item.answer_count, Item.in_flight))).one()
    assert tuple(row) == (1, 0)


async def test_a_refused_late_answer_stays_refused(store: LabelStore, clock: Clock) -> None:
    """Told "timed out", the worker's tap is final: the same tap delivered again is not stored
    later, when the item happens to have a free slot (found by the property test)."""
    await store.load_taskset(make_spec(items=1, overlap=1))
    await join(store, 1)
    await join(store, 2)
    abandoned = await serve(store, 1)
    clock.advance(minutes=11)
    await store.expire_leases()
    taken = await serve(store, 2)
    assert await store.record_answer(abandoned.token, 1, 0) == Rejected(Rejection.EXPIRED)
    # Worker 2 skips: the skip does not count, so the item asks for an answer again.
    assert isinstance(await store.record_answer(taken.token, 2, "skip"), Recorded)
    assert await store.record_answer(abandoned.token, 1, 0) == Rejected(Rejection.EXPIRED)
    assert await count(store, select(func.count()).select_from(Answer)) == 1  # the skip
    await join(store, 3)
    assert isinstance(await serve(store, 3), ServedItem)  # the item is still open to others


async def test_blocked_worker_frees_the_lease(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=1, overlap=1))
    await join(store, 1)
    await join(store, 2)
    item = await serve(store, 1)
    await store.mark_inactive(1)
    assert (await serve(store, 2)).text == item.text


async def test_duplicate_taskset_name_is_refused(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=2))
    with pytest.raises(TaskSetExists):
        await store.load_taskset(make_spec(items=5))
    assert await count(store, select(func.count()).select_from(Item)) == 2


async def test_deep_link_joins_the_named_set_among_several(store: LabelStore) -> None:
    await store.load_taskset(make_spec("first", items=2))
    second = await store.load_taskset(make_spec("second", items=2))
    assert await store.join(1, "Ann") is None  # two open sets: the worker must choose
    view = await store.join(1, "Ann", taskset_id=second)
    assert view is not None and view.name == "second"
    assert (await serve(store, 1)).taskset.name == "second"


async def test_taskset_progress_counts_done_items(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=4, overlap=1))
    await join(store, 1)
    await label_everything(store, [1])
    [progress] = await store.taskset_progress()
    assert (progress.items, progress.items_done, progress.answers) == (4, 4, 4)


async def test_concurrent_workers_lose_no_answer(db_url: str, clock: Clock) -> None:
    """32 workers, each with its own connection, answer at once: no lock errors, no loss."""
    engine = create_engine(db_url, pool_size=16)
    store = LabelStore(engine, clock=clock)
    try:
        await store.load_taskset(make_spec(items=200, overlap=3))
        workers = list(range(100, 132))
        for worker_id in workers:
            await join(store, worker_id)

        async def work(worker_id: int) -> int:
            done = 0
            result = await store.next_item_for(worker_id)
            while isinstance(result, ServedItem) and done < 15:
                outcome = await store.record_answer(result.token, worker_id, worker_id % 3)
                assert isinstance(outcome, Recorded)
                done += 1
                result = outcome.next
            return done

        done = await asyncio.gather(*(work(w) for w in workers))
        assert sum(done) == 32 * 15
        assert await count(store, select(func.count()).select_from(Answer)) == 32 * 15
        violations = await store.consistency_violations()
        assert violations == dict.fromkeys(violations, 0)
    finally:
        await store.close()


async def test_next_item_query_walks_the_index_of_a_100k_item_set(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """With 100k items (statistics gathered), the pick query walks ``ix_items_pick`` in order
    and stops early: no scan of the set, no sort. PostgreSQL's plan on 1M items is in
    benchmarks/RESULTS-scale.md."""
    path = tmp_path / "big.db"
    shutil.copy(sqlite_template, path)
    store = LabelStore(create_engine(f"sqlite+aiosqlite:///{path}"))
    taskset_id = await store.load_taskset(make_spec("big", items=100_000, overlap=3))
    await join(store, 1)
    for _ in range(3):  # the worker has a history that the pick must step over
        item = await serve(store, 1)
        assert isinstance(await store.record_answer(item.token, 1, 0), Recorded)
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")
    compiled = store.labeling.next_item_query.compile(dialect=store.engine.dialect)
    params = {**compiled.params, "taskset": taskset_id, "worker": 1}
    positional = tuple(params[name] for name in compiled.positiontup or ())
    async with store.engine.connect() as conn:
        plan = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), positional)
        details = " ".join(str(row[-1]) for row in plan)
    await store.close()
    assert "ix_items_pick" in details
    assert "TEMP B-TREE" not in details


async def test_dropped_postgres_connection_costs_no_answer(postgres_url: str) -> None:
    """pg_terminate_backend under the pooled connections: the next tap is still stored (on a
    new connection, or retried on one: tests/test_driver.py checks the retry itself)."""
    store = LabelStore(create_engine(postgres_url))
    admin = create_engine(postgres_url)
    try:
        taskset_id = await store.load_taskset(make_spec("dropped", items=3, overlap=1))
        await join(store, 424242, taskset_id)
        item = await serve(store, 424242)
        async with admin.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert killed >= 1  # the store's pooled connection
        assert isinstance(await store.record_answer(item.token, 424242, 0), Recorded)
        async with admin.connect() as conn:  # the store's other pooled connections died too
            answers = select(func.count()).where(Answer.worker_id == 424242)
            assert await conn.scalar(answers) == 1
    finally:
        await store.close()
        await admin.dispose()


async def test_simultaneous_taps_on_one_button_store_one_answer(store: LabelStore) -> None:
    """Two processes handle the same tap at once (a double tap, a redelivery): one answer."""
    await store.load_taskset(make_spec(items=3, overlap=1))
    await join(store, 1)
    item = await serve(store, 1)
    outcomes = await asyncio.gather(*(store.record_answer(item.token, 1, 0) for _ in range(4)))
    assert sum(isinstance(outcome, Recorded) for outcome in outcomes) == 1
    rejected = [outcome for outcome in outcomes if isinstance(outcome, Rejected)]
    assert [outcome.reason for outcome in rejected] == [Rejection.DUPLICATE] * 3
    assert await count(store, select(func.count()).select_from(Answer)) == 1


async def test_paused_set_serves_nothing_until_resumed(store: LabelStore) -> None:
    await store.load_taskset(make_spec("pausable", items=3, overlap=1))
    await join(store, 1)
    assert await store.set_taskset_status("pausable", TaskSetStatus.PAUSED)
    paused = await store.next_item_for(1)
    assert isinstance(paused, NoItem) and paused.reason == NoItemReason.NOT_ACTIVE
    assert await store.set_taskset_status("pausable", TaskSetStatus.ACTIVE)
    assert isinstance(await store.next_item_for(1), ServedItem)


async def test_moving_to_another_set_gives_the_open_item_back(store: LabelStore) -> None:
    first = await store.load_taskset(make_spec("first", items=1, overlap=1))
    second = await store.load_taskset(make_spec("second", items=1, overlap=1))
    await join(store, 1, first)
    left_behind = await serve(store, 1)
    await join(store, 1, second)
    await join(store, 2, first)
    assert (await serve(store, 2)).text == left_behind.text
