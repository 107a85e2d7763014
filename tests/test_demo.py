"""``labelbot demo`` as a newcomer runs it: one command, a reproducible experiment in which the
quality controls pay off, the same on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.demo import CROWD, load_sample

ACCURACY = re.compile(
    r"^accuracy  honest-crowd (\d+\.\d)%  majority-vote (\d+\.\d)%  quality-controls (\d+\.\d)%$"
)
SUSPENDED = re.compile(r"^  • (\w+) \(\w+\): (.+)$")
EXPORTS = ("sentiment-demo.csv", "sentiment-demo.jsonl", "sentiment-demo-answers.csv")


@dataclass(frozen=True)
class Run:
    out: Path
    stdout: str

    @property
    def lines(self) -> list[str]:
        # The folder is the one thing two runs may print differently.
        return self.stdout.replace(str(self.out), "OUT").splitlines()


def start_demo(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,  # away from the repository's .env and demo-output/
        env={**os.environ, "COLUMNS": "200"},  # no line wraps a long temporary path
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def demo_run(out: Path, *database: str) -> Run:
    code, stdout, stderr = finish(start_demo(out, *database, "demo", "--out", str(out)))
    assert code == 0, stderr
    return Run(out, stdout)


@pytest.fixture(scope="module")
def sqlite_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """The default demo twice with the default seed, side by side (one core each)."""
    outs = [tmp_path_factory.mktemp("demo") for _ in range(2)]
    processes = [start_demo(out, "demo", "--out", str(out)) for out in outs]
    runs = []
    for out, process in zip(outs, processes, strict=True):
        code, stdout, stderr = finish(process)
        assert code == 0, stderr
        runs.append(Run(out, stdout))
    return runs[0], runs[1]


def accuracy(run: Run) -> tuple[float, float, float]:
    found = [match for line in run.lines if (match := ACCURACY.match(line))]
    assert len(found) == 1, run.stdout
    honest, everyone, controlled = (float(value) for value in found[0].groups())
    return honest, everyone, controlled


def test_the_last_line_shows_the_quality_controls_paying_off(sqlite_runs: tuple[Run, Run]) -> None:
    run = sqlite_runs[0]
    honest, everyone, controlled = accuracy(run)

    assert ACCURACY.match(run.lines[-1])
    assert controlled >= everyone
    assert abs(controlled - honest) <= 1.0


def test_the_same_seed_gives_the_same_output_and_exports(sqlite_runs: tuple[Run, Run]) -> None:
    first, second = sqlite_runs

    assert first.lines == second.lines
    for name in EXPORTS:
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name


def test_the_spammers_are_suspended_with_a_reason(sqlite_runs: tuple[Run, Run]) -> None:
    reasons = {
        match[1]: match[2] for line in sqlite_runs[0].lines if (match := SUSPENDED.match(line))
    }

    spammers = {name for name, persona in CROWD if persona.kind == "spammer"}
    assert spammers <= set(reasons)


def test_the_exports_hold_every_item_with_its_overlap_of_trusted_answers(
    sqlite_runs: tuple[Run, Run],
) -> None:
    out = sqlite_runs[0].out
    spec = load_sample().spec

    with (out / "sentiment-demo.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["item_id"] for row in rows] == [item.id for item in spec.items]
    regular = [row for row in rows if not row["gold"]]
    assert all(row["label"] and int(row["answers"]) == spec.overlap.min for row in regular)
    jsonl = (out / "sentiment-demo.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["label"] for line in jsonl] == [row["label"] for row in rows]
    with (out / "sentiment-demo-answers.csv").open(encoding="utf-8-sig", newline="") as stream:
        workers = {row["worker"] for row in csv.DictReader(stream)}
    assert len(workers) == len(CROWD)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_gives_the_same_run_and_a_used_database_is_refused(
    db_url: str, sqlite_runs: tuple[Run, Run], tmp_path: Path
) -> None:
    run = demo_run(tmp_path, "--database-url", db_url)

    assert run.lines == sqlite_runs[0].lines
    for name in EXPORTS:
        assert (run.out / name).read_bytes() == (sqlite_runs[0].out / name).read_bytes(), name

    code, _, stderr = finish(start_demo(tmp_path, "--database-url", db_url, "demo"))
    assert code == 2
    assert "needs an empty database" in stderr


REVIEWS = re.compile(
    r"^Reviews: (\d+) done \((\d+) answers found wrong\), (\d+) gold reviews, (\d+) waiting; "
    r"reviewer agreement (\d+)%"
)


def review_demo(out: Path, *database: str) -> Run:
    command = [*database, "demo", "--scenario", "review", "--out", str(out)]
    # Twice the default demo's work (the reviews), on a machine other tests may share.
    code, stdout, stderr = finish(start_demo(out, *command), timeout=600)
    assert code == 0, stderr
    return Run(out, stdout)


@pytest.fixture(scope="module")
def review_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return review_demo(tmp_path_factory.mktemp("review-demo"))


def test_the_review_scenario_reviews_in_the_loop_and_pays_off(review_run: Run) -> None:
    [found] = [match for line in review_run.lines if (match := REVIEWS.match(line))]
    done, wrong, gold, _waiting, _agreement = (int(value) for value in found.groups())
    assert done > 0 and gold > 0 and 0 < wrong < done
    # Reviewers are the workers who reached the level: never a spammer for long, and the
    # careful ones among them.
    reviewers = [
        line for line in review_run.lines if line.startswith("  • ") and "reviews," in line
    ]
    assert any("(careful)" in line for line in reviewers)
    _honest, everyone, controlled = accuracy(review_run)
    assert ACCURACY.match(review_run.lines[-1])
    assert controlled > everyone


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_review_scenario_is_the_same_on_postgres(
    db_url: str, review_run: Run, tmp_path: Path
) -> None:
    run = review_demo(tmp_path, "--database-url", db_url)

    assert run.lines == review_run.lines
    for name in EXPORTS:
        assert (run.out / name).read_bytes() == (review_run.out / name).read_bytes(), name
