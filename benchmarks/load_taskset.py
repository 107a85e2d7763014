"""``labelbot load`` as a whole process: items per second and peak memory, against the loader
before streaming, on SQLite and PostgreSQL.

Run from the repository root (PostgreSQL at 127.0.0.1:5432, user postgres, as for the tests):

    .venv/bin/python benchmarks/load_taskset.py [--rounds 3] [--large-rounds 1] [--out FILE]

Seeded task sets of 100k and 1M items (ids, a review text of 20-120 characters, every tenth
item gold) are written once as JSON, JSONL and CSV into a temporary folder. The baseline is the
tree of commit ``--baseline`` (``git archive``), run with PYTHONPATH on it; "streamed" is this
tree. Each load runs against a fresh database migrated beforehand by the contender's own tree
(a copied SQLite file; a PostgreSQL database created from a migrated template), so the timing
excludes the first migration. Contenders alternate in each round; wall time and the child's CPU
(utime + stime, from os.wait4) are each one's minimum over the rounds, peak RSS (ru_maxrss) its
maximum. Both trees are byte-compiled first and run from their .pyc files, as an installed
package is (PYTHONDONTWRITEBYTECODE is dropped for the children). The baseline refuses sets
over 100,000 items: it is run once on each 1M file to show that it still does, and the 1M
loads, streamed only, run ``--large-rounds`` times (a minute or more each on a loaded
machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from trees import ROOT, Child, byte_compile, run_in, tree_at

FORMATS = ("json", "jsonl", "csv")
LABELS = ("positive", "negative")
WORDS = "the a phone battery screen delivery great awful fine slow fast broken works love hate"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
# The targets: items per second on 100k items (JSON and CSV, both databases), and a peak RSS
# for JSONL and CSV that does not grow with the set (1M items within this factor of 100k).
TARGET_ITEMS_PER_S = 50_000
TARGET_RSS_GROWTH = 1.5


@dataclass
class Run:
    wall: float = float("inf")
    cpu: float = float("inf")
    rss_mb: float = 0.0
    refused: str = ""

    def add(self, wall: float, cpu: float, rss_mb: float) -> None:
        self.wall = min(self.wall, wall)
        self.cpu = min(self.cpu, cpu)
        self.rss_mb = max(self.rss_mb, rss_mb)


def write_sets(folder: Path, count: int) -> dict[str, Path]:
    """The same seeded items as JSON, JSONL and CSV files; written a line at a time."""
    rng = random.Random(count)
    words = WORDS.split()
    paths = {fmt: folder / f"items-{count}.{fmt}" for fmt in FORMATS}
    spec = {"name": f"bench-{count}", "labels": list(LABELS)}
    with (
        paths["json"].open("w") as as_json,
        paths["jsonl"].open("w") as as_jsonl,
        paths["csv"].open("w") as as_csv,
    ):
        as_json.write(json.dumps(spec)[:-1] + ', "items": [\n')
        as_jsonl.write(json.dumps(spec) + "\n")
        as_csv.write("id,text,gold\n")
        for number in range(count):
            text = f"Review {number}: " + " ".join(rng.choices(words, k=rng.randint(3, 20)))
            item = {"id": f"r{number}", "text": text}
            if number % 10 == 0:
                item["gold"] = LABELS[rng.randrange(2)]
            line = json.dumps(item)
            as_json.write(("" if number == 0 else ",\n") + line)
            as_jsonl.write(line + "\n")
            as_csv.write(f"{item['id']},{text},{item.get('gold', '')}\n")
        as_json.write("\n]}\n")
    return paths


def labelbot(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "--database-url", url, *args]


def psql(statement: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", statement],
        check=True,
        capture_output=True,
    )


class Databases:
    """A fresh, migrated database per run for each contender and backend."""

    def __init__(self, folder: Path, trees: dict[str, Path], backends: list[str]) -> None:
        self.folder = folder
        self.trees = trees
        self.backends = backends
        self.runs = 0
        for contender, tree in trees.items():
            if "sqlite" in backends:
                url = f"sqlite+aiosqlite:///{self.template_file(contender)}"
                self.migrate(url, tree)
            if "postgres" in backends:
                template = self.template_name(contender)
                psql(f"DROP DATABASE IF EXISTS {template}")
                psql(f"CREATE DATABASE {template}")
                self.migrate(f"{POSTGRES}/{template}", tree)

    def template_file(self, contender: str) -> Path:
        return self.folder / f"template-{contender}.db"

    def template_name(self, contender: str) -> str:
        return f"bench_load_template_{contender}"

    @staticmethod
    def migrate(url: str, tree: Path) -> None:
        migrated = run_in(tree, labelbot(url, "db", "upgrade"))
        if migrated.code != 0:
            raise SystemExit(f"migrating {url} failed:\n{migrated.stderr}")

    def fresh(self, contender: str, backend: str) -> str:
        self.runs += 1
        if backend == "sqlite":
            path = self.folder / f"run-{self.runs}.db"
            shutil.copy(self.template_file(contender), path)
            return f"sqlite+aiosqlite:///{path}"
        name = f"bench_load_run_{self.runs}"
        psql(f"CREATE DATABASE {name} TEMPLATE {self.template_name(contender)}")
        return f"{POSTGRES}/{name}"

    def drop(self, url: str) -> None:
        if url.startswith("sqlite"):
            for path in self.folder.glob(Path(url.split("///", 1)[1]).name + "*"):
                path.unlink()
        else:
            psql(f"DROP DATABASE {url.rsplit('/', 1)[1]}")

    def close(self) -> None:
        if "postgres" in self.backends:
            for contender in self.trees:
                psql(f"DROP DATABASE IF EXISTS {self.template_name(contender)}")


def load_once(databases: Databases, contender: str, backend: str, path: Path) -> Child:
    url = databases.fresh(contender, backend)
    try:
        command = labelbot(url, "load", str(path), "--labels", ",".join(LABELS))
        return run_in(databases.trees[contender], command)
    finally:
        databases.drop(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large-rounds", type=int, default=1, help="rounds over 100k items")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--baseline", default="4676da8", help="commit before streaming")
    parser.add_argument("--out", type=Path, help="also write the results as Markdown here")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    backends = args.backends.split(",")

    with tempfile.TemporaryDirectory(prefix="load_taskset-") as temp:
        folder = Path(temp)
        trees = {"baseline": tree_at(args.baseline, folder / "baseline"), "streamed": ROOT}
        for tree in trees.values():
            byte_compile(tree)
        files = {size: write_sets(folder, size) for size in sizes}
        databases = Databases(folder, trees, backends)
        results: dict[tuple[str, int, str, str], Run] = {}
        try:
            for round_number in range(args.rounds):
                for size in sizes:
                    if size > 100_000 and round_number >= args.large_rounds:
                        continue
                    for fmt in FORMATS:
                        for backend in backends:
                            # The baseline cannot load over 100,000 items: once shows that.
                            with_baseline = size <= 100_000 or round_number == 0
                            order = ["baseline", "streamed"] if with_baseline else ["streamed"]
                            if round_number % 2:
                                order.reverse()
                            for contender in order:
                                key = (contender, size, fmt, backend)
                                run = results.setdefault(key, Run())
                                child = load_once(databases, contender, backend, files[size][fmt])
                                if child.code == 0:
                                    run.add(child.wall, child.cpu, child.rss_mb)
                                elif child.code == 2 and contender == "baseline" and size > 100_000:
                                    run.refused = child.stderr.strip().splitlines()[-1]
                                else:
                                    raise SystemExit(
                                        f"{key} failed ({child.code}):\n{child.stderr}"
                                    )
                                print(
                                    f"round {round_number + 1} {contender:8} {size:>9,} {fmt:5} "
                                    f"{backend:8} {child.wall:6.2f} s wall {child.cpu:6.2f} s CPU "
                                    f"{child.rss_mb:5.0f} MB" + (" refused" if child.code else ""),
                                    file=sys.stderr,
                                )
        finally:
            databases.close()
    report = render(results, sizes, backends, args.rounds, args.large_rounds)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


def render(
    results: dict[tuple[str, int, str, str], Run],
    sizes: list[int],
    backends: list[str],
    rounds: int,
    large_rounds: int,
) -> str:
    lines = [
        f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; each contender's minimum over {rounds} alternating "
        f"rounds ({large_rounds} over 100k items; peak RSS: maximum)",
        "",
        "| items | format | database | baseline wall s | CPU s | RSS MB | items/s "
        "| streamed wall s | CPU s | RSS MB | items/s | speed-up wall / CPU |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for size in sizes:
        for fmt in FORMATS:
            for backend in backends:
                before = results[("baseline", size, fmt, backend)]
                after = results[("streamed", size, fmt, backend)]
                rate = size / after.wall
                if before.refused:
                    base = "refused | | | "
                    ratio = "-"
                else:
                    base = (
                        f"{before.wall:.2f} | {before.cpu:.2f} | {before.rss_mb:.0f} "
                        f"| {size / before.wall:,.0f} "
                    )
                    ratio = f"{before.wall / after.wall:.1f}x / {before.cpu / after.cpu:.1f}x"
                lines.append(
                    f"| {size:,} | {fmt} | {backend} | {base}| {after.wall:.2f} "
                    f"| {after.cpu:.2f} | {after.rss_mb:.0f} | {rate:,.0f} | {ratio} |"
                )
                if size == 100_000 and fmt in ("json", "csv"):
                    met = "met" if rate >= TARGET_ITEMS_PER_S else "NOT met"
                    verdicts.append(
                        f"- {fmt} 100k on {backend}: {rate:,.0f} items/s, target "
                        f"{TARGET_ITEMS_PER_S:,}: {met}"
                    )
    small, large = min(sizes), max(sizes)
    if large > small:
        for fmt in ("jsonl", "csv"):
            for backend in backends:
                growth = (
                    results[("streamed", large, fmt, backend)].rss_mb
                    / results[("streamed", small, fmt, backend)].rss_mb
                )
                met = "met" if growth <= TARGET_RSS_GROWTH else "NOT met"
                verdicts.append(
                    f"- {fmt} peak RSS on {backend}, {large:,} / {small:,} items: {growth:.2f}x,"
                    f" target at most {TARGET_RSS_GROWTH}x: {met}"
                )
        refusals = {
            run.refused for key, run in results.items() if key[0] == "baseline" and run.refused
        }
        verdicts += [f"- the baseline on {large:,} items: `{refusal}`" for refusal in refusals]
    return "\n".join([*lines, "", "Targets:", *verdicts])


if __name__ == "__main__":
    main()
