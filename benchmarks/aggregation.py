"""Accuracy and speed of answer aggregation, ours against crowd-kit, on real and synthetic data.

Run from the repository root:

    .venv/bin/python benchmarks/aggregation.py [--rounds 3] [--data DIR]

Real datasets are the folders of ``--data`` holding ``label.csv`` and ``truth.csv``; the
synthetic set has 1,000,000 answers (100k items x 10 workers each, 2k workers, 5 labels) from
workers of mixed skill, spammers included, with a fixed seed. Each method and its crowd-kit
counterpart run in turn, ``--rounds`` times; wall time and process CPU time (user + system) are
each one's minimum over rounds. crowd-kit runs too when installed (the ``bench`` extra);
otherwise only our methods run.

These are the inner functions, in one process, on answers already in memory: the whole
``labelbot aggregate`` process against crowd-kit's read_csv + fit_predict, as a user runs them,
is ``benchmarks/batch_tools.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasksets.aggregation import METHODS, Answers, Method, aggregate
from tasksets.answers_csv import read_answers, read_gold

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CROWDKIT_CLASSES = {"mv": "MajorityVote", "wawa": "Wawa", "ds": "DawidSkene"}


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    answers: Answers
    gold: np.ndarray  # label per item, -1 where unknown


@dataclass(frozen=True, slots=True)
class Timing:
    accuracy: float
    wall: float  # seconds, minimum over rounds
    cpu: float  # seconds of user + system time, minimum over rounds


def real_datasets(folder: Path) -> Iterator[Dataset]:
    for path in sorted(folder.iterdir()):
        if not (path / "label.csv").is_file() or not (path / "truth.csv").is_file():
            continue
        with (path / "label.csv").open(newline="") as stream:
            coded = read_answers(stream)
        with (path / "truth.csv").open(newline="") as stream:
            gold = read_gold(stream, coded)
        yield Dataset(path.name, coded.answers, gold)


def synthetic_dataset(
    n_items: int = 100_000,
    n_workers: int = 2_000,
    n_labels: int = 5,
    answers_per_item: int = 10,
    seed: int = 20240601,
) -> Dataset:
    """Workers: 30% good (accuracy 0.65-0.9), 45% weak (0.3-0.6), 25% spammers.

    Half the spammers answer uniformly at random, half always give the same label. A wrong
    answer of a non-spammer is uniform over the other labels; true labels are skewed.
    """
    rng = np.random.default_rng(seed)
    label_weights = np.linspace(2, 1, n_labels)  # the first label twice as common as the last
    truth = rng.choice(n_labels, size=n_items, p=label_weights / label_weights.sum())
    kind = rng.choice(3, size=n_workers, p=[0.3, 0.45, 0.25])
    accuracy = np.where(
        kind == 0, rng.uniform(0.65, 0.9, n_workers), rng.uniform(0.3, 0.6, n_workers)
    )
    # Distinct workers per item: a random start and a stride too small to wrap onto itself.
    start = rng.integers(0, n_workers, size=n_items)
    stride = rng.integers(1, n_workers // answers_per_item, size=n_items)
    workers = ((start[:, None] + stride[:, None] * np.arange(answers_per_item)) % n_workers).ravel()
    items = np.repeat(np.arange(n_items), answers_per_item)
    true_labels = truth[items]
    correct = rng.random(items.size) < accuracy[workers]
    wrong = (true_labels + rng.integers(1, n_labels, size=items.size)) % n_labels
    labels = np.where(correct, true_labels, wrong)
    spammer = kind[workers] == 2
    random_spam = spammer & (workers % 2 == 0)
    labels[random_spam] = rng.integers(0, n_labels, size=int(random_spam.sum()))
    constant_spam = spammer & ~random_spam
    labels[constant_spam] = workers[constant_spam] % n_labels
    answers = Answers(items, workers, labels, n_items, n_workers, n_labels)
    return Dataset(f"synthetic {items.size:,}", answers, truth)


def measure(
    contenders: dict[str, Callable[[], np.ndarray]], gold: np.ndarray, rounds: int
) -> dict[str, Timing]:
    """Each contender's best wall and CPU time, running them in turn in every round (so a
    noisy stretch of the machine hits all of them); accuracy of the labels on the gold items."""
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    labels: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, run in contenders.items():
            cpu_start, wall_start = _process_cpu(), time.perf_counter()
            labels[name] = run()
            walls[name].append(time.perf_counter() - wall_start)
            cpus[name].append(_process_cpu() - cpu_start)
    known = gold >= 0
    return {
        name: Timing(
            float(np.mean(labels[name][known] == gold[known])), min(walls[name]), min(cpus[name])
        )
        for name in contenders
    }


def crowdkit_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("crowdkit", "pandas"))


def crowdkit_runner(method: str, dataset: Dataset) -> Callable[[], np.ndarray]:
    """A run of crowd-kit's counterpart of ``method``, returning a label per item."""
    import pandas as pd
    from crowdkit import aggregation as crowdkit

    answers = dataset.answers
    frame = pd.DataFrame(
        {"task": answers.items, "worker": answers.workers, "label": answers.labels}
    )
    model_class = getattr(crowdkit, CROWDKIT_CLASSES[method])

    def run() -> np.ndarray:
        labels = model_class().fit_predict(frame)
        return labels.reindex(np.arange(answers.n_items)).fillna(-1).to_numpy(dtype=np.int64)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    datasets = list(real_datasets(args.data)) if args.data.is_dir() else []
    if not datasets:
        print(f"no datasets under {args.data}: synthetic data only")
    synthetic = synthetic_dataset()
    datasets.append(synthetic)
    with_crowdkit = crowdkit_installed()
    if not with_crowdkit:
        print("crowd-kit is not installed (pip install -e '.[bench]'): running ours only")

    print(
        f"{date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"best of {args.rounds} rounds\n"
    )
    print(
        "| dataset | answers | method | accuracy | wall s | CPU s "
        "| crowd-kit accuracy | crowd-kit wall s | crowd-kit CPU s | speed-up |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    shortfalls = []
    for dataset in datasets:
        for method in METHODS:
            contenders = {"ours": partial(_aggregated_labels, dataset.answers, method)}
            if with_crowdkit:
                contenders["crowd-kit"] = crowdkit_runner(method, dataset)
            timings = measure(contenders, dataset.gold, args.rounds)
            ours = timings["ours"]
            row = [dataset.name, f"{dataset.answers.items.size:,}", method]
            row += [f"{ours.accuracy:.4f}", f"{ours.wall:.4f}", f"{ours.cpu:.3f}"]
            if with_crowdkit:
                theirs = timings["crowd-kit"]
                speedup = theirs.wall / ours.wall
                row += [f"{theirs.accuracy:.4f}", f"{theirs.wall:.3f}", f"{theirs.cpu:.3f}"]
                row.append(f"{speedup:.0f}x")
                if ours.accuracy < theirs.accuracy:
                    shortfalls.append(f"{dataset.name} {method}: accuracy below crowd-kit's")
                if dataset is synthetic and method == "ds" and speedup < 10:
                    shortfalls.append(f"{dataset.name} ds: only {speedup:.1f}x crowd-kit's speed")
            else:
                row += ["", "", "", ""]
            if dataset is synthetic and method == "ds" and ours.wall > 3.0:
                shortfalls.append(f"{dataset.name} ds: {ours.wall:.2f} s, target 3 s")
            print("| " + " | ".join(row) + " |", flush=True)
    print("\ntargets: " + ("all met" if not shortfalls else "; ".join(shortfalls)))


def _aggregated_labels(answers: Answers, method: Method) -> np.ndarray:
    return aggregate(answers, method).labels


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
