"""``labelbot demo --scenario transcription``: typed answers from a simulated crowd through the
real bot, the same for a seed, with ROVER and the gold checks beating a single typist."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bot.demo_transcription import CROWD, load_clips
from tests.test_demo import Run, finish, start_demo

WER = re.compile(
    r"^word error rate  one-typist (\d+\.\d)%  rover-all (\d+\.\d)%  quality-controls (\d+\.\d)%$"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    outs = [tmp_path_factory.mktemp("transcription") for _ in range(2)]
    processes = [
        start_demo(out, "demo", "--scenario", "transcription", "--out", str(out)) for out in outs
    ]
    runs = []
    for out, process in zip(outs, processes, strict=True):
        code, stdout, stderr = finish(process)
        assert code == 0, stderr
        runs.append(Run(out, stdout))
    return runs[0], runs[1]


def test_rover_over_trusted_typists_beats_one_typist_and_the_spammer_is_suspended(
    runs: tuple[Run, Run],
) -> None:
    run = runs[0]
    [found] = [match for line in run.lines if (match := WER.match(line))]
    one, everyone, controlled = (float(value) for value in found.groups())
    assert controlled < one and controlled < everyone
    spammer = next(name for name, typist in CROWD if typist.kind == "spammer")
    [row] = [line for line in run.lines if f"│ {spammer} " in line]
    assert "suspended" in row


def test_the_same_seed_gives_the_same_run_and_transcripts(runs: tuple[Run, Run]) -> None:
    first, second = runs
    assert first.lines == second.lines
    name = f"{load_clips().spec.name}-rover.csv"
    assert (first.out / name).read_bytes() == (second.out / name).read_bytes()
    with (first.out / name).open(encoding="utf-8-sig") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["item_id"] for row in rows] == load_clips().regular
    assert all(row["text"] for row in rows)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_gives_the_same_run(db_url: str, runs: tuple[Run, Run], tmp_path: Path) -> None:
    args = ("--database-url", db_url, "demo", "--scenario", "transcription", "--out", str(tmp_path))
    code, stdout, stderr = finish(start_demo(tmp_path, *args))
    assert code == 0, stderr
    assert Run(tmp_path, stdout).lines == runs[0].lines
