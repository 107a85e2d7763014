"""``labelbot export`` on a set of 1,000,000 answers, as whole processes, before and after.

Run from the repository root:

    .venv/bin/python benchmarks/export.py [--rounds 3] [--out FILE] [--backends sqlite,postgres]

A seeded task set of 100k items (the most a set may hold) answered 10 times each (2k workers of
mixed skill, spammers included, as in benchmarks/aggregation.py; about 3% of the answers are Skip
or Not sure, 2% of the workers are suspended, one item in 20 is a gold item, some item texts start
like a formula) is written once per database: the items through ``LabelStore.load_taskset``, the
workers, memberships, assignments and answers in bulk (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), in a child process so that the parent stays small (a child's peak RSS starts at
that of the parent it was forked from).

The baseline is the tree of ``--baseline`` (a commit: ``git archive`` into a temporary folder),
run with the same interpreter and settings in the same run. Each export (``--raw`` CSV and
JSONL, and the aggregated CSV by majority vote and by Dawid-Skene) runs as its own process,
``python -m bot.cli --database-url URL export NAME ... --out FILE`` with the tree on
PYTHONPATH: CLI start, imports and the migration check included. Both trees are byte-compiled
first and the children run without PYTHONDONTWRITEBYTECODE, as an installed labelbot (pip
compiles it) runs. Contenders alternate over the
rounds; wall time and the child's CPU (utime + stime, from os.wait4) are each one's minimum, the
peak RSS (ru_maxrss) its maximum. Every output of the new tree must be byte for byte the
baseline's. The target: 100k answers a second, whole process, for every export.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import filecmp
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from trees import ROOT, byte_compile, run_in, tree_at

sys.path.insert(0, str(ROOT))

NAME = "export-bench"
POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_DATABASE = "labelbot_bench_export"
LABELS = ("positive", "negative", "neutral", "mixed", "spam")
# A set holds at most 100k items (tasksets/spec.py), so 1M answers take 10 per item.
N_ITEMS = 100_000
ANSWERS_PER_ITEM = 10
GOLD_EVERY = 20
BASELINE = "4676da8"
TARGET_ANSWERS_PER_S = 100_000
# The columns of the rows ``build`` writes in bulk, per table.
COLUMNS = {
    "workers": ("id", "display_name", "status", "joined_at"),
    "memberships": (
        "worker_id",
        "taskset_id",
        "status",
        "gold_answers",
        "gold_correct",
        "answers",
        "joined_at",
    ),
    "assignments": (
        "id",
        "token",
        "worker_id",
        "item_id",
        "taskset_id",
        "state",
        "served_at",
        "expires_at",
    ),
    "answers": (
        "id",
        "assignment_id",
        "worker_id",
        "item_id",
        "taskset_id",
        "kind",
        "label",
        "seconds",
        "created_at",
    ),
}
EXPORTS = {
    "raw csv": ["--raw", "--format", "csv"],
    "raw jsonl": ["--raw", "--format", "jsonl"],
    "mv csv": ["--method", "mv", "--format", "csv"],
    "ds csv": ["--method", "ds", "--format", "csv"],
}


# ------------------------------------------------------------------------------ the data


async def build(url: str, n_items: int) -> int:
    """The benchmark's task set in the empty database at ``url``; returns its answer count."""
    import numpy as np
    from sqlalchemy import select

    from benchmarks.aggregation import synthetic_dataset
    from storage.engine import create_engine, is_sqlite
    from storage.migrate import upgrade
    from storage.models import Item
    from storage.store import LabelStore
    from tasksets.spec import TaskSetSpec

    data = synthetic_dataset(
        n_items=n_items, n_labels=len(LABELS), answers_per_item=ANSWERS_PER_ITEM, seed=7
    )
    answers, truth = data.answers, data.gold
    rng = np.random.default_rng(11)
    spec = TaskSetSpec.model_validate(
        {
            "name": NAME,
            "question": "What is the sentiment?",
            "labels": list(LABELS),
            "overlap": ANSWERS_PER_ITEM,
            "items": [
                {
                    "id": f"item{index}",
                    # A formula-like start now and then: the CSV must neutralise it.
                    "text": f'{"=" if index % 97 == 0 else ""}text of item {index}, "quoted"',
                    **({"gold": LABELS[truth[index]]} if index % GOLD_EVERY == 0 else {}),
                }
                for index in range(n_items)
            ],
        }
    )
    engine = create_engine(url)
    await upgrade(engine)
    store = LabelStore(engine)
    taskset_id = await store.load_taskset(spec)
    async with engine.connect() as connection:  # the items' keys, in the set's order
        keys = np.array(
            (
                await connection.scalars(
                    select(Item.id).where(Item.taskset_id == taskset_id).order_by(Item.position)
                )
            ).all()
        )
    await store.close()

    # Answers in a random order over a month, as they would arrive; ids follow that order.
    order = rng.permutation(answers.items.size)
    item_keys = keys[answers.items[order]].tolist()
    worker_ids = (answers.workers[order] + 1000).tolist()
    labels = [LABELS[label] for label in answers.labels[order]]
    kinds = rng.choice(["label", "skip", "unsure"], size=order.size, p=[0.97, 0.02, 0.01])
    seconds = rng.gamma(2.0, 4.0, size=order.size).tolist()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, 30 * 86400 * 10**6, size=order.size)).tolist()
    suspended = rng.random(answers.n_workers) < 0.02
    workers = range(1000, 1000 + answers.n_workers)
    rows: dict[str, list[tuple[object, ...]]] = {
        "workers": [(w, f"worker {w}", "active", start) for w in workers],
        "memberships": [
            (w, taskset_id, "suspended" if out else "active", 0, 0, 0, start)
            for w, out in zip(workers, suspended, strict=True)
        ],
        "assignments": [
            (n + 1, f"bench{n}", worker_ids[n], item_keys[n], taskset_id, "answered", start, start)
            for n in range(order.size)
        ],
        "answers": [
            (
                n + 1,
                n + 1,
                worker_ids[n],
                item_keys[n],
                taskset_id,
                str(kinds[n]),
                labels[n] if kinds[n] == "label" else None,
                seconds[n],
                start + timedelta(microseconds=offsets[n]),
            )
            for n in range(order.size)
        ],
    }
    if is_sqlite(url):
        write_sqlite(url, rows)
    else:
        await write_postgres(url, rows)
    return order.size


def write_sqlite(url: str, rows: dict[str, list[tuple[object, ...]]]) -> None:
    import sqlite3

    from sqlalchemy.dialects.sqlite import DATETIME, dialect
    from sqlalchemy.engine import make_url

    # Times written as SQLAlchemy writes them on SQLite.
    as_text = DATETIME().bind_processor(dialect())
    connection = sqlite3.connect(make_url(url).database or "")
    with connection:
        for table, table_rows in rows.items():
            names = COLUMNS[table]
            marks = ", ".join("?" for _ in names)
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})",
                (
                    tuple(as_text(v) if isinstance(v, datetime) else v for v in row)
                    for row in table_rows
                ),
            )
    connection.execute("ANALYZE")
    connection.close()


async def write_postgres(url: str, rows: dict[str, list[tuple[object, ...]]]) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    connection = await asyncpg.connect(
        host=parts.host, port=parts.port, user=parts.username, database=parts.database
    )
    try:
        for table, table_rows in rows.items():
            await connection.copy_records_to_table(
                table, records=table_rows, columns=list(COLUMNS[table])
            )
        await connection.execute("SELECT setval('answers_id_seq', (SELECT max(id) FROM answers))")
        await connection.execute(
            "SELECT setval('assignments_id_seq', (SELECT max(id) FROM assignments))"
        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def fresh_database(backend: str, folder: Path) -> str:
    from sqlalchemy.engine import make_url

    from storage.engine import execute_autocommit

    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{folder / 'export.db'}"
    await execute_autocommit(
        POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)'
    )
    await execute_autocommit(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{POSTGRES_DATABASE}"')
    return (
        make_url(POSTGRES_ADMIN_URL)
        .set(database=POSTGRES_DATABASE)
        .render_as_string(hide_password=False)
    )


async def drop_database(backend: str) -> None:
    from storage.engine import execute_autocommit

    if backend == "postgres":
        await execute_autocommit(
            POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)'
        )


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    wall: float = float("inf")
    cpu: float = float("inf")
    rss_mb: float = 0.0
    same: str = ""  # how the output compares with the baseline's

    def add(self, wall: float, cpu: float, rss_mb: float) -> None:
        self.wall = min(self.wall, wall)
        self.cpu = min(self.cpu, cpu)
        self.rss_mb = max(self.rss_mb, rss_mb)


def run_child(command: list[str], tree: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS in MB of one child process run in ``tree``."""
    child = run_in(tree, command)
    if child.code != 0:
        raise SystemExit(f"{command} failed:\n{child.stderr}")
    return child.wall, child.cpu, child.rss_mb


def checkout(revision: str, folder: Path) -> Path:
    """The tree of ``revision`` in ``folder``, with the migrations it lacks."""
    tree_at(revision, folder)
    # Migrations newer than the tree change nothing an export reads; with them it opens a
    # database at the current head instead of refusing an unknown revision.
    # The helpers they import (storage/migrations/*.py) come along.
    migrations = Path("storage", "migrations")
    for migration in [
        *(ROOT / migrations).glob("[!_]*.py"),
        *(ROOT / migrations / "versions").glob("0*.py"),
    ]:
        target = folder / migration.relative_to(ROOT)
        if not target.exists():
            shutil.copy(migration, target)
    return folder


def compare(before: Path, after: Path) -> str:
    """How an output compares with the baseline's: "same bytes"; or, where the new tree added
    columns (the raw export's text and voice columns), "same rows" when every row holds the
    baseline's values in the baseline's columns. Read as streams: the parent stays small."""
    if filecmp.cmp(before, after, shallow=False):
        return "same bytes"
    with (
        before.open(encoding="utf-8", newline="") as old,
        after.open(encoding="utf-8", newline="") as new,
    ):
        if before.suffix == ".csv":
            rows = zip(csv.reader(old), csv.reader(new), strict=True)
        else:
            rows = zip(map(json.loads, old), map(json.loads, new), strict=True)
        added = 0
        for row, new_row in rows:
            added = len(new_row) - len(row)
            kept = new_row[: len(row)] if isinstance(row, list) else {k: new_row[k] for k in row}
            if kept != row:
                return "DIFFERENT"
    return f"same rows, {added} columns added" if added > 0 else "DIFFERENT"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the results as Markdown here")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare against")
    parser.add_argument("--after", help="commit to measure (default: this working tree)")
    parser.add_argument("--items", type=int, default=N_ITEMS)
    parser.add_argument("--build", help=argparse.SUPPRESS)  # child: fill this database
    args = parser.parse_args()
    if args.build:
        answers = asyncio.run(build(args.build, args.items))
        print(answers)
        return
    backends = args.backends.split(",")

    with tempfile.TemporaryDirectory(prefix="export-bench-") as temp:
        folder = Path(temp)
        trees = {"before": checkout(args.baseline, folder / "before")}
        trees["after"] = ROOT if args.after is None else checkout(args.after, folder / "after")
        for tree in trees.values():
            byte_compile(tree)
        runs: dict[tuple[str, str, str], Run] = {}
        answers: dict[str, int] = {}
        loads: dict[str, tuple[float, float]] = {}
        for backend in backends:
            url = asyncio.run(fresh_database(backend, folder))
            started = time.perf_counter()
            built = subprocess.run(
                [sys.executable, __file__, "--build", url, "--items", str(args.items)],
                check=True,
                capture_output=True,
                text=True,
            )
            answers[backend] = int(built.stdout.split()[-1])
            print(
                f"{backend}: {answers[backend]:,} answers built in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
            load = [os.getloadavg()[0]]  # how busy the machine was while it was measured
            for round_number in range(args.rounds):
                # Alternate which tree goes first, so that neither always finds a warm cache.
                order = list(trees.items())[:: 1 if round_number % 2 == 0 else -1]
                for export, flags in EXPORTS.items():
                    for tree_name, tree in order:
                        suffix = ".jsonl" if "jsonl" in export else ".csv"
                        out = folder / f"{backend}-{export.replace(' ', '-')}-{tree_name}{suffix}"
                        command = [
                            sys.executable,
                            "-m",
                            "bot.cli",
                            "--database-url",
                            url,
                            "export",
                            NAME,
                            *flags,
                            "--out",
                            str(out),
                        ]
                        run = runs.setdefault((backend, export, tree_name), Run())
                        run.add(*run_child(command, tree))
                    outputs = [
                        folder / f"{backend}-{export.replace(' ', '-')}-{name}{suffix}"
                        for name in trees
                    ]
                    runs[backend, export, "after"].same = compare(*outputs)
                    for output in outputs:
                        output.unlink()
                load.append(os.getloadavg()[0])
                print(f"  {backend}: round {round_number + 1} done", flush=True)
            loads[backend] = (min(load), max(load))
            asyncio.run(drop_database(backend))

    lines = [
        f"{date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; whole processes (`labelbot export ... --out FILE`, "
        f"CLI start included); each contender's minimum over {args.rounds} alternating rounds "
        f"(peak RSS: maximum); before: {args.baseline}, after: {args.after or 'this tree'}; "
        + "; ".join(
            f"1-minute load average during {backend}: {low:.1f}-{high:.1f}"
            for backend, (low, high) in loads.items()
        ),
        "",
        "| database | export | answers | before wall s | CPU s | peak RSS MB "
        "| after wall s | CPU s | peak RSS MB | answers/s (after) | speed-up wall / CPU "
        "| output against the baseline's |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    shortfalls = []
    for backend in backends:
        for export in EXPORTS:
            old, new = runs[backend, export, "before"], runs[backend, export, "after"]
            rate = answers[backend] / new.wall
            same = new.same
            lines.append(
                f"| {backend} | {export} | {answers[backend]:,} | {old.wall:.2f} | "
                f"{old.cpu:.2f} | {old.rss_mb:.0f} | {new.wall:.2f} | {new.cpu:.2f} | "
                f"{new.rss_mb:.0f} | {rate:,.0f} | {old.wall / new.wall:.1f}x / "
                f"{old.cpu / new.cpu:.1f}x | {same} |"
            )
            if rate < TARGET_ANSWERS_PER_S:
                shortfalls.append(f"{backend} {export}: {rate:,.0f} answers/s")
            if same == "DIFFERENT":
                shortfalls.append(f"{backend} {export}: output differs from the baseline's")
    lines += [
        "",
        f"target {TARGET_ANSWERS_PER_S:,} answers/s (whole process): "
        + ("met by every export" if not shortfalls else "NOT met: " + "; ".join(shortfalls)),
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
