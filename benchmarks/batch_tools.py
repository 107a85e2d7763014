"""``labelbot aggregate`` against crowd-kit as whole processes, and the CLI's start time.

Run from the repository root:

    .venv/bin/python benchmarks/batch_tools.py [--rounds 3] [--out FILE]

A seeded synthetic file of 1,000,000 answers (200k items x 5 workers each, 2k workers, 5
labels; workers of mixed skill, spammers included, as in benchmarks/aggregation.py) and its gold
file are written once into a temporary folder. Each contender then runs as its own process,
alternating over the rounds: ``labelbot aggregate ANSWERS --method M`` with its output on a
file, and a crowd-kit script doing ``pd.read_csv`` + ``fit_predict`` and writing the result CSV.
Wall time and the child's CPU (utime + stime, from os.wait4) are each contender's minimum over
the rounds; peak RSS (the child's ru_maxrss) its maximum. Accuracy on gold is computed here
from each output file. crowd-kit comes from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABEL_NAMES = ("positive", "negative", "neutral", "mixed", "spam")
METHODS = ("mv", "wawa", "ds")
CROWDKIT_SCRIPT = """
import sys

import pandas as pd
from crowdkit import aggregation

answers_path, method, out_path = sys.argv[1:]
model = {"mv": aggregation.MajorityVote, "wawa": aggregation.Wawa, "ds": aggregation.DawidSkene}
answers = pd.read_csv(answers_path).rename(columns={"item": "task"})
labels = model[method]().fit_predict(answers)
labels.rename("label").rename_axis("item").to_csv(out_path)
"""
# The targets: wall-time speed-up against crowd-kit per method, peak RSS, start time.
TARGET_SPEEDUP = {"mv": 2.0, "wawa": 2.0, "ds": 10.0}
TARGET_RSS_MB = 200.0
TARGET_START_S = 0.3


@dataclass
class Run:
    wall: float = float("inf")
    cpu: float = float("inf")
    rss_mb: float = 0.0
    accuracy: float = float("nan")

    def add(self, wall: float, cpu: float, rss_mb: float) -> None:
        self.wall = min(self.wall, wall)
        self.cpu = min(self.cpu, cpu)
        self.rss_mb = max(self.rss_mb, rss_mb)


def write_data(folder: Path) -> None:
    """The synthetic answers (with a header) and gold, as labelbot and pandas both read them."""
    import numpy as np

    from benchmarks.aggregation import synthetic_dataset

    dataset = synthetic_dataset(n_items=200_000, answers_per_item=5)
    answers = dataset.answers
    items = np.char.add("item", answers.items.astype(str))
    workers = np.char.add("w", answers.workers.astype(str))
    rows = np.char.add(np.char.add(items, ","), np.char.add(workers, ","))
    rows = np.char.add(rows, np.array(LABEL_NAMES)[answers.labels])
    answers_path = folder / "answers.csv"
    answers_path.write_text("item,worker,label\n" + "\n".join(rows.tolist()) + "\n")
    gold_items = np.char.add("item", np.arange(answers.n_items).astype(str))
    gold_rows = np.char.add(np.char.add(gold_items, ","), np.array(LABEL_NAMES)[dataset.gold])
    gold_path = folder / "gold.csv"
    gold_path.write_text("item,truth\n" + "\n".join(gold_rows.tolist()) + "\n")


def run_child(command: list[str], stdout_path: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS in MB of one child process."""
    with open(stdout_path or os.devnull, "w") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    stderr = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed:\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def accuracy(result_path: Path, gold: dict[str, str]) -> float:
    with result_path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        next(reader)
        labels = {row[0]: row[1] for row in reader if len(row) >= 2}  # not the accuracy line
    known = [item for item in gold if item in labels]
    return sum(labels[item] == gold[item] for item in known) / len(known)


def labelbot_command() -> list[str]:
    script = Path(sys.executable).with_name("labelbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the results as Markdown here")
    parser.add_argument("--write-data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_data:
        write_data(args.write_data)
        return
    labelbot = labelbot_command()

    with tempfile.TemporaryDirectory(prefix="batch_tools-") as temp:
        folder = Path(temp)
        # In a child: a child's ru_maxrss starts at the RSS of the parent it was forked from,
        # so the parent stays small (no numpy, no data) while the contenders run.
        subprocess.run([sys.executable, __file__, "--write-data", temp], check=True)
        answers_path, gold_path = folder / "answers.csv", folder / "gold.csv"
        contenders: dict[tuple[str, str], list[str]] = {}
        for method in METHODS:
            contenders["labelbot", method] = [
                *labelbot,
                "aggregate",
                str(answers_path),
                "--method",
                method,
            ]
            contenders["crowd-kit", method] = [
                sys.executable,
                "-c",
                CROWDKIT_SCRIPT,
                str(answers_path),
                method,
                str(folder / f"crowd-kit-{method}.csv"),
            ]
        starts = {
            "labelbot --help": ["--help"],
            "labelbot aggregate --help": ["aggregate", "--help"],
        }
        runs = {key: Run() for key in [*contenders, *starts]}
        for _ in range(args.rounds):
            for key, command in contenders.items():
                out = folder / f"{key[0]}-{key[1]}.csv"
                runs[key].add(*run_child(command, out if key[0] == "labelbot" else None))
            for key, start_args in starts.items():
                runs[key].add(*run_child([*labelbot, *start_args]))
        with gold_path.open() as stream:
            gold = dict(row.strip().split(",") for row in list(stream)[1:])
        for key in contenders:
            runs[key].accuracy = accuracy(folder / f"{key[0]}-{key[1]}.csv", gold)
        # labelbot's own --gold figure must be the one computed here.
        with_gold = folder / "with-gold.csv"
        run_child([*contenders["labelbot", "ds"], "--gold", str(gold_path)], with_gold)
        last_line = with_gold.read_text().rstrip().rsplit("\n", 1)[1]
        assert last_line == f"accuracy on gold items: {runs['labelbot', 'ds'].accuracy:.4f}"

    lines = [
        f"{date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; "
        f"each contender's minimum over {args.rounds} alternating rounds (peak RSS: maximum)",
        "",
        "| method | labelbot wall s | CPU s | peak RSS MB | accuracy "
        "| crowd-kit wall s | CPU s | peak RSS MB | accuracy | speed-up, wall / CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    # (target, measured, met) per target, printed as a table after the measurements.
    targets: list[tuple[str, str, bool]] = []
    for method in METHODS:
        ours, theirs = runs["labelbot", method], runs["crowd-kit", method]
        wall_ratio, cpu_ratio = theirs.wall / ours.wall, theirs.cpu / ours.cpu
        lines.append(
            f"| {method} | {ours.wall:.2f} | {ours.cpu:.2f} | {ours.rss_mb:.0f} | "
            f"{ours.accuracy:.4f} | {theirs.wall:.2f} | {theirs.cpu:.2f} | "
            f"{theirs.rss_mb:.0f} | {theirs.accuracy:.4f} | "
            f"{wall_ratio:.1f}x / {cpu_ratio:.1f}x |"
        )
        targets += [
            (
                f"{method}: >= {TARGET_SPEEDUP[method]:.0f}x crowd-kit's wall time",
                f"{wall_ratio:.1f}x",
                wall_ratio >= TARGET_SPEEDUP[method],
            ),
            (
                f"{method}: peak RSS < {TARGET_RSS_MB:.0f} MB",
                f"{ours.rss_mb:.0f} MB",
                ours.rss_mb < TARGET_RSS_MB,
            ),
            (
                f"{method}: accuracy >= crowd-kit's",
                f"{ours.accuracy:.4f} vs {theirs.accuracy:.4f}",
                ours.accuracy >= theirs.accuracy,
            ),
        ]
    lines += ["", "| start | wall s | CPU s | peak RSS MB |", "|---|---:|---:|---:|"]
    for key in starts:
        run = runs[key]
        lines.append(f"| `{key}` | {run.wall:.3f} | {run.cpu:.3f} | {run.rss_mb:.0f} |")
        targets.append(
            (f"`{key}` < {TARGET_START_S} s", f"{run.wall:.3f} s", run.wall < TARGET_START_S)
        )
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    lines += [
        f"| {target} | {measured} | {'met' if met else 'NOT MET'} |"
        for target, measured, met in targets
    ]
    missed = sum(not met for _, _, met in targets)
    lines += ["", f"targets: {len(targets) - missed} of {len(targets)} met"]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
