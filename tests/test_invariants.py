"""Property test: whatever workers do, in whatever order, the bookkeeping stays exact.

Hypothesis drives random sequences of taps (labels, skips, repeats of old buttons, forged
choices), abandoned items, lease expiry and blocked workers against a real store, on SQLite and
on PostgreSQL (where an answer's writes and the next lease are merged statements), then recounts
everything from the rows (``LabelStore.consistency_violations``) and checks the invariants the
README promises: one answer per (worker, item), no item over its overlap, a ledger that equals
the rewards of the labeled answers, and all of it after any undo (of the last answer or an older
one, in time or too late, twice).
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storage.engine import create_engine, is_sqlite
from storage.models import Answer, Base
from storage.results import Recorded, Rejected, ServedItem, Undone
from storage.store import LabelStore
from tests.conftest import Clock
from tests.factories import make_spec

WORKERS = 4
Action = tuple[str, int, int]
actions = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("tap", "tap", "tap", "skip", "retap", "forge"),
                *("leave", "expire", "block", "undo", "undo"),
            ]
        ),
        st.integers(0, WORKERS - 1),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=60,
)

EXAMPLES = 100  # per database: 2.5 times the old SQLite-only run; the file takes 30-50 s
OpenStore = Callable[[Clock], Awaitable[LabelStore]]


@pytest.fixture
def open_empty_store(db_url: str, request: pytest.FixtureRequest) -> OpenStore:
    """Opens a store on ``db_url`` emptied for one example (hypothesis runs many per test).

    SQLite: the file is put back to the migrated template. PostgreSQL: every row is deleted,
    children first (a tenth of the time TRUNCATE takes on tables this small).
    """
    template: Path | None = (
        request.getfixturevalue("sqlite_template") if is_sqlite(db_url) else None
    )

    async def open_empty(clock: Clock) -> LabelStore:
        if template is not None:
            path = Path(str(make_url(db_url).database))
            for stale in path.parent.glob(f"{path.name}-*"):  # WAL and shared-memory files
                stale.unlink()
            shutil.copy(template, path)
        store = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(5))
        if template is None:
            async with store.engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    await connection.execute(table.delete())
        return store

    return open_empty


async def play(open_store: OpenStore, script: list[Action], overlap: object, gold: int) -> None:
    clock = Clock(step=1.5)
    store = await open_store(clock)
    try:
        taskset_id = await store.load_taskset(
            make_spec(items=8, gold=gold, overlap=overlap, gold_ratio=0.3)
        )
        current: dict[int, ServedItem | None] = {}
        old_tokens: dict[int, list[str]] = {w: [] for w in range(WORKERS)}
        # Each worker's answers as (answer id, token answered), for Undo buttons old and new.
        answered: dict[int, list[tuple[int, str]]] = {w: [] for w in range(WORKERS)}
        for worker in range(WORKERS):
            await store.join(worker, f"W{worker}", taskset_id=taskset_id)
            result = await store.next_item_for(worker)
            current[worker] = result if isinstance(result, ServedItem) else None
        for action, worker, value in script:
            item = current[worker]
            if action == "expire":
                clock.advance(minutes=11)
                await store.expire_leases()
            elif action == "block":
                await store.mark_inactive(worker)
                current[worker] = None
            elif action == "leave":
                current[worker] = None  # walks away; the lease runs out later
            elif action == "undo" and answered[worker]:
                # Mostly the last answer (the Undo on screen), now and then an older button.
                older = value // 3 % len(answered[worker])
                answer_id, token = answered[worker][-1 - older]
                outcome = await store.undo_answer(answer_id, token, worker)
                if isinstance(outcome, Undone):
                    current[worker] = outcome.reopened
            elif action == "retap" and old_tokens[worker]:
                token = old_tokens[worker][value % len(old_tokens[worker])]
                assert isinstance(await store.record_answer(token, worker, 0), Rejected)
            elif action == "forge" and item is not None:
                forged = await store.record_answer(item.token, worker, 3 + value)
                assert isinstance(forged, Rejected)
                stolen = await store.record_answer(item.token, (worker + 1) % WORKERS, 0)
                assert isinstance(stolen, Rejected)
            elif action in ("tap", "skip") and item is not None:
                choice = "skip" if action == "skip" else value % 3
                outcome = await store.record_answer(item.token, worker, choice)
                old_tokens[worker].append(item.token)
                if isinstance(outcome, Recorded):
                    answered[worker].append((outcome.answer_id, item.token))
                    current[worker] = outcome.next if isinstance(outcome.next, ServedItem) else None
                else:
                    current[worker] = None
            if current[worker] is None and action in ("tap", "skip", "leave"):
                result = await store.next_item_for(worker)
                current[worker] = result if isinstance(result, ServedItem) else None
        violations = await store.consistency_violations()
        assert violations == dict.fromkeys(violations, 0)
        async with store.sessions() as session:
            pairs = await session.scalar(
                select(func.count()).select_from(
                    select(Answer.worker_id, Answer.item_id).distinct().subquery()
                )
            )
            answers = await session.scalar(select(func.count()).select_from(Answer))
        assert pairs == answers  # one answer per (worker, item)
    finally:
        await store.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=actions,
    overlap=st.sampled_from([1, 2, 3, {"min": 1, "max": 3, "confidence": 0.9}]),
    gold=st.integers(0, 3),
)
def test_bookkeeping_survives_any_sequence_of_actions(
    open_empty_store: OpenStore,
    script: list[Action],
    overlap: object,
    gold: int,
) -> None:
    asyncio.run(play(open_empty_store, script, overlap, gold))
