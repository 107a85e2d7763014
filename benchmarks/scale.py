"""Hot-path latency against the size of the data: a 10k-item and a 1M-item set side by side.

A fast loader builds, in a dedicated PostgreSQL database migrated by ``storage.migrate.upgrade``,
two task sets (10k and 1M items), 100k workers and ~10M answers with their assignments, ledger
rewards and memberships, consistent with ``storage/models.py``. It writes with
``INSERT ... SELECT generate_series`` while the secondary indexes are dropped and foreign-key
triggers are off (the rows are consistent by construction), then rebuilds the indexes and runs
``VACUUM ANALYZE``. Each set has a finished head (items at their overlap, closed), a frontier of
partly answered items and an untouched tail; a hundred "power workers" hold ~8k answers each.

It then times ``LabelStore.next_item_for`` and ``LabelStore.record_answer`` for workers drawn at
random (power workers always among them), alternating between the two sets, and prints p50/p99
per set, the ratio 1M/10k, and EXPLAIN ANALYZE of the pick query on the 1M set.

    .venv/bin/python benchmarks/scale.py            # full: ~10M answers, about 10 minutes
    .venv/bin/python benchmarks/scale.py --small    # ~100k answers, under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.engine import create_engine, execute_autocommit
from storage.migrate import upgrade
from storage.results import Recorded, ServedItem
from storage.store import LabelStore
from tasksets.quality import QualityRules

ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
LABELS = ("positive", "negative", "neutral")
# Tables whose secondary indexes are rebuilt after the load rather than maintained row by row.
BULK_TABLES = ("assignments", "answers", "ledger_entries", "memberships")
REWARD_MINOR = 2
T = TypeVar("T")
# Targets: medians on 1M items at most 1.3x those on 10k items; every p99 under 20 ms.
MAX_RATIO = 1.3
MAX_P99_MS = 20.0


@dataclass(frozen=True, slots=True)
class Shape:
    """How much data to build: the same shape for both sets, only the item count differs."""

    items: tuple[int, int]
    workers: int
    needed: int  # answers per item (the overlap)
    finished: float  # share of items at their overlap
    frontier: float  # share of items with 1..needed-1 answers after the finished head

    @property
    def power_workers(self) -> int:
        return max(1, self.workers // 1000)


FULL = Shape(items=(10_000, 1_000_000), workers=100_000, needed=12, finished=0.8, frontier=0.02)
SMALL = Shape(items=(10_000, 1_000_000), workers=10_000, needed=3, finished=0.03, frontier=0.002)


@dataclass(slots=True)
class Timings:
    next_item: list[float]
    record: list[float]


def database_url(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def admin(sql: str) -> None:
    await execute_autocommit(ADMIN_URL, sql)


async def step(connection: AsyncConnection, what: str, sql: str, **numbers: int) -> None:
    """Run one loading statement and print how long it took; ``numbers`` fill ``{name}``s
    (integers only: inlined, so that PostgreSQL types the generate_series arithmetic)."""
    started = time.perf_counter()
    await connection.execute(text(sql.format(**numbers)))
    print(f"  {what:<44} {time.perf_counter() - started:6.1f} s", flush=True)


async def drop_secondary_indexes(connection: AsyncConnection) -> list[str]:
    """Drop UNIQUE constraints and plain indexes (primary keys stay; foreign keys point at them)
    of the bulk tables; returns the statements that recreate them."""
    tables = list(BULK_TABLES)
    uniques = (
        await connection.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype = 'u' AND conrelid::regclass::text = ANY(:t)"
            ),
            {"t": tables},
        )
    ).all()
    indexes = (
        await connection.execute(
            text(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                "FROM pg_index i WHERE i.indrelid::regclass::text = ANY(:t) "
                "AND NOT i.indisprimary AND NOT i.indisunique"
            ),
            {"t": tables},
        )
    ).all()
    for table, name, _definition in uniques:
        await connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _definition in indexes:
        await connection.execute(text(f"DROP INDEX {name}"))
    return [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition in uniques
    ] + [definition for _name, definition in indexes]


async def create_taskset(connection: AsyncConnection, name: str) -> int:
    labels = "[" + ", ".join(f'{{"value": "{v}", "text": "{v.title()}"}}' for v in LABELS) + "]"
    # Fast answers are the benchmark's doing, not the workers': the speed rule is off.
    quality = QualityRules(min_median_seconds=0).model_dump_json()
    return int(
        await connection.scalar(
            text(
                "INSERT INTO tasksets (name, title, instructions, question, labels, overlap_min, "
                "overlap_max, reward_minor, currency, gold_ratio, quality, status, created_at) "
                "VALUES (:name, :name, '', 'What is the sentiment?', CAST(:labels AS json), "
                ":needed, :needed, :reward, 'USD', 0, CAST(:quality AS json), 'active', now()) "
                "RETURNING id"
            ),
            {
                "name": name,
                "labels": labels,
                "needed": 1,
                "reward": REWARD_MINOR,
                "quality": quality,
            },
        )
    )


async def load(engine: AsyncEngine, shape: Shape) -> tuple[int, int]:
    """Build the data set; returns the ids of the small and the large task set."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("SET session_replication_role = replica"))  # no FK checks
        await connection.execute(text("SET maintenance_work_mem = '512MB'"))
        recreate = await drop_secondary_indexes(connection)
        taskset_ids = [await create_taskset(connection, f"scale-{n}") for n in shape.items]
        await step(
            connection,
            f"workers: {shape.workers:,}",
            "INSERT INTO workers (id, display_name, language, status, current_taskset_id, "
            "joined_at) SELECT g, 'worker ' || g, 'en', 'active', "
            "CASE WHEN g % 2 = 1 THEN {small} ELSE {large} END, now() "
            "FROM generate_series(1, {workers}) g",
            small=taskset_ids[0],
            large=taskset_ids[1],
            workers=shape.workers,
        )
        for taskset_id, items in zip(taskset_ids, shape.items, strict=True):
            finished = int(items * shape.finished)
            frontier = finished + int(items * shape.frontier)
            await connection.execute(
                text("UPDATE tasksets SET overlap_min = :k, overlap_max = :k WHERE id = :id"),
                {"k": shape.needed, "id": taskset_id},
            )
            await step(
                connection,
                f"items: {items:,}",
                "INSERT INTO items (taskset_id, external_id, position, text, is_gold, "
                "answer_count, in_flight, needed, open) "
                "SELECT {tid}, 'i' || g, g, 'text of item ' || g, false, c, 0, {k}, c < {k} "
                "FROM generate_series(0, {items} - 1) g, LATERAL (SELECT CASE "
                "WHEN g < {finished} THEN {k} WHEN g < {frontier} THEN 1 + g % ({k} - 1) ELSE 0 "
                "END AS c) counts",
                tid=taskset_id,
                items=items,
                k=shape.needed,
                finished=finished,
                frontier=frontier,
            )
            # Answer slot 0 of every item goes to a power worker, the others spread evenly.
            await step(
                connection,
                f"assignments of set {taskset_id}",
                "INSERT INTO assignments (token, worker_id, item_id, taskset_id, state, "
                "served_at, expires_at) "
                "SELECT 'g' || i.id || '_' || j, w, i.id, i.taskset_id, 'answered', "
                "now() - interval '1 day', now() - interval '1 day' + interval '10 minutes' "
                "FROM items i, generate_series(0, i.answer_count - 1) j, LATERAL (SELECT CASE "
                "WHEN j = 0 THEN 1 + i.position % {power} "
                "ELSE {power} + 1 + (i.position * ({k} - 1) + j - 1) % ({workers} - {power}) "
                "END AS w) pick WHERE i.taskset_id = {tid} ORDER BY i.id, j",
                tid=taskset_id,
                power=shape.power_workers,
                k=shape.needed,
                workers=shape.workers,
            )
        await step(
            connection,
            "answers",
            "INSERT INTO answers (id, assignment_id, worker_id, item_id, taskset_id, kind, "
            "label, seconds, created_at) "
            "SELECT id, id, worker_id, item_id, taskset_id, 'label', "
            "(ARRAY['positive', 'negative', 'neutral'])[1 + (worker_id + item_id) % 3], "
            "3 + (id % 20), served_at + interval '5 seconds' FROM assignments ORDER BY id",
        )
        await step(
            connection,
            "ledger rewards",
            "INSERT INTO ledger_entries (worker_id, taskset_id, answer_id, kind, amount_minor, "
            "currency, created_at) SELECT worker_id, taskset_id, id, 'reward', {reward}, 'USD', "
            "created_at FROM answers ORDER BY id",
            reward=REWARD_MINOR,
        )
        await step(
            connection,
            "memberships",
            "INSERT INTO memberships (worker_id, taskset_id, status, gold_answers, gold_correct, "
            "answers, joined_at) SELECT w.id, t.id, 'active', 0, 0, coalesce(a.n, 0), now() "
            "FROM workers w CROSS JOIN tasksets t LEFT JOIN (SELECT worker_id, taskset_id, "
            "count(*) AS n FROM answers GROUP BY 1, 2) a "
            "ON a.worker_id = w.id AND a.taskset_id = t.id",
        )
        await connection.execute(
            text("SELECT setval('answers_id_seq', (SELECT max(id) FROM answers))")
        )
        started = time.perf_counter()
        for statement in recreate:
            await connection.execute(text(statement))
        print(f"  {'rebuild indexes':<44} {time.perf_counter() - started:6.1f} s", flush=True)
        await step(connection, "VACUUM ANALYZE", "VACUUM ANALYZE")
    return taskset_ids[0], taskset_ids[1]


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed(call: Callable[[], Awaitable[T]], into: list[float]) -> T:
    started = time.perf_counter()
    result = await call()
    into.append((time.perf_counter() - started) * 1000)
    return result


async def measure(
    store: LabelStore, workers_by_set: dict[int, list[int]], calls: int, rng: random.Random
) -> dict[int, Timings]:
    """Per worker: ``next_item_for`` (leases a new item) then ``record_answer`` (stores it and
    leases the next); the sets take turns so drift in the machine hits both alike."""
    timings = {taskset_id: Timings([], []) for taskset_id in workers_by_set}
    for index in range(calls):
        for taskset_id, workers in workers_by_set.items():
            worker = workers[index % len(workers)]
            target = timings[taskset_id]
            served = await timed(partial(store.next_item_for, worker), target.next_item)
            if not isinstance(served, ServedItem):
                raise RuntimeError(f"worker {worker} got no item: {served!r}")
            choice = rng.randrange(len(LABELS))
            outcome = await timed(
                partial(store.record_answer, served.token, worker, choice), target.record
            )
            if not isinstance(outcome, Recorded):
                raise RuntimeError(f"worker {worker}: answer not recorded: {outcome!r}")
    return timings


async def explain_pick(engine: AsyncEngine, store: LabelStore, taskset_id: int) -> str:
    query = store.labeling.next_item_query.params(taskset=taskset_id, worker=2)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as connection:
        plan = await connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
        lines = [line for (line,) in plan]
        await connection.rollback()  # EXPLAIN ANALYZE took the row lock: let it go
    return "\n".join(lines)


def sample_workers(shape: Shape, parity: int, count: int, rng: random.Random) -> list[int]:
    """Distinct workers whose current set is the one of ``parity``; power workers included."""
    power = [w for w in range(1, shape.power_workers + 1) if w % 2 == parity]
    rest = rng.sample(range(shape.power_workers + 1, shape.workers + 1), 3 * count)
    chosen = power + [w for w in rest if w % 2 == parity][: count - len(power)]
    rng.shuffle(chosen)
    return chosen


async def run(args: argparse.Namespace) -> int:
    shape = SMALL if args.small else FULL
    name = "labelbot_scale_small" if args.small else "labelbot_scale"
    url = database_url(name)
    if not args.reuse:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin(f'CREATE DATABASE "{name}"')
        engine = create_engine(url)
        await upgrade(engine)
        print(f"loading {name}: {shape}", flush=True)
        started = time.perf_counter()
        await load(engine, shape)
        print(f"  {'total':<44} {time.perf_counter() - started:6.1f} s", flush=True)
        await engine.dispose()
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            ids = (await connection.execute(text("SELECT id FROM tasksets ORDER BY id"))).all()
            answers = await connection.scalar(text("SELECT count(*) FROM answers"))
            power_history = await connection.scalar(text("SELECT max(answers) FROM memberships"))
        small_id, large_id = ids[0][0], ids[1][0]
        print(f"data: {answers:,} answers; the longest history is {power_history:,} answers")
        rng = random.Random(args.seed)
        store = LabelStore(engine, rng=rng)
        workers = {
            small_id: sample_workers(shape, 1, args.calls + args.warmup, rng),
            large_id: sample_workers(shape, 0, args.calls + args.warmup, rng),
        }
        warm = {tid: ws[: args.warmup] for tid, ws in workers.items()}
        await measure(store, warm, args.warmup, rng)
        timed_workers = {tid: ws[args.warmup :] for tid, ws in workers.items()}
        timings = await measure(store, timed_workers, args.calls, rng)
        print(report(timings[small_id], timings[large_id], shape, args.calls))
        print("\nEXPLAIN ANALYZE of the pick query on the 1M set:")
        print(await explain_pick(engine, store, large_id))
        worst = max(
            max(percentile(t.next_item, 0.99), percentile(t.record, 0.99)) for t in timings.values()
        )
        ratios = [
            statistics.median(timings[large_id].next_item)
            / statistics.median(timings[small_id].next_item),
            statistics.median(timings[large_id].record)
            / statistics.median(timings[small_id].record),
        ]
        ok = worst < MAX_P99_MS and max(ratios) <= MAX_RATIO
        print(
            f"\ntargets (ratio <= {MAX_RATIO}, p99 < {MAX_P99_MS:.0f} ms): "
            + ("met" if ok else "MISSED")
        )
        return 0 if ok else 1
    finally:
        await engine.dispose()


def report(small: Timings, large: Timings, shape: Shape, calls: int) -> str:
    rows = [
        f"{calls} calls per operation and set; milliseconds",
        "",
        "| operation | set | p50 | p99 | ratio 1M/10k (p50) | ratio (p99) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for operation, pick in (
        ("next_item_for", lambda t: t.next_item),
        ("record_answer", lambda t: t.record),
    ):
        a, b = pick(small), pick(large)
        p50a, p99a = percentile(a, 0.5), percentile(a, 0.99)
        p50b, p99b = percentile(b, 0.5), percentile(b, 0.99)
        rows.append(f"| {operation} | {shape.items[0]:,} | {p50a:.2f} | {p99a:.2f} | | |")
        rows.append(
            f"| {operation} | {shape.items[1]:,} | {p50b:.2f} | {p99b:.2f} "
            f"| {p50b / p50a:.2f} | {p99b / p99a:.2f} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="~100k answers instead of ~10M")
    parser.add_argument("--reuse", action="store_true", help="measure the database built before")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per operation/set")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
