"""The ``labelbot`` command line as a coordinator uses it (SQLite; the storage tests cover both)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from storage.engine import create_engine
from storage.results import Recorded, ServedItem
from storage.store import LabelStore
from tests.factories import make_spec

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parents[1] / "tasksets" / "samples" / "sentiment.json"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def run(db: str, *args: str) -> int:
    return main(["--database-url", db, *args])


def tasksets_listing(db: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert run(db, "tasksets") == 0
    return capsys.readouterr().out


def test_load_json_jsonl_and_csv(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "load", str(SAMPLE)) == 0
    assert "loaded 'sentiment-v1': 30 items (5 gold)" in capsys.readouterr().out
    assert run(db, "load", str(DATA / "reviews.jsonl")) == 0
    assert run(db, "load", str(DATA / "photos.csv"), "--labels", "cat,dog", "--overlap", "2") == 0
    listing = tasksets_listing(db, capsys)
    for name in ("sentiment-v1", "reviews", "photos"):
        assert name in listing


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        (
            '{"name": "x", "labels": ["a", "b"], "items": [{"id": "1", "text": "t"}, '
            '{"id": "1", "text": "u"}]}',
            ".json",
            "duplicate id",
        ),
        (
            '{"name": "x", "labels": ["a", "b"], "items": [{"id": "g", "text": "t", "gold": "c"}]}',
            ".json",
            "item 'g' field 'gold'",
        ),
        (
            '{\n"name": "x",\n"labels": ["a", "b"],\n"items": [\n{"id": "1", "text": "t"},\n'
            '{"id": "2", "text": "u"}\n{"id": "3"}\n]}',
            ".json",
            "line 7",
        ),
        (
            '{"name": "x", "labels": [], "items": [{"id": "1", "text": "t"}]}',
            ".json",
            "field 'labels'",
        ),
        ("id,text\n1,hello\n", ".csv", "labels"),
        ("not a task set", ".txt", "unsupported file type"),
    ],
    ids=[
        "duplicate-id",
        "unknown-gold",
        "broken-json-line-7",
        "empty-labels",
        "csv-no-labels",
        "unknown-format",
    ],
)
def test_invalid_file_exits_2_names_the_problem_and_stores_nothing(
    db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    suffix: str,
    expected: str,
) -> None:
    assert run(db, "load", str(SAMPLE)) == 0
    bad = tmp_path / f"bad{suffix}"
    bad.write_text(content)
    before = tasksets_listing(db, capsys)

    assert run(db, "load", str(bad)) == 2
    assert expected in capsys.readouterr().err
    assert tasksets_listing(db, capsys) == before


def test_loading_a_name_twice_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "load", str(SAMPLE)) == 0
    assert run(db, "load", str(SAMPLE)) == 2
    assert "already exists" in capsys.readouterr().err
    assert run(db, "load", str(SAMPLE), "--name", "sentiment-v2") == 0


async def _label(db: str) -> None:
    """Three workers label a 4-item set; worker 3 disagrees with the others on one item."""
    engine = create_engine(db)
    store = LabelStore(engine, rng=random.Random(1))
    await store.load_taskset(make_spec("cli", items=4, gold=1, overlap=3, gold_ratio=0.0))
    for worker_id in (1, 2, 3):
        await store.join(worker_id, f"W{worker_id}")
        result = await store.next_item_for(worker_id)
        while isinstance(result, ServedItem):
            choice = 1 if worker_id == 3 and result.text == "text number 0" else 0
            outcome = await store.record_answer(result.token, worker_id, choice)
            assert isinstance(outcome, Recorded)
            result = outcome.next
    await store.close()


def test_export_aggregated_and_raw(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "db", "upgrade") == 0
    asyncio.run(_label(db))
    out = tmp_path / "cli.csv"
    assert run(db, "export", "cli", "--format", "csv", "--out", str(out), "--method", "ds") == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert list(rows[0]) == ["item_id", "label", "confidence", "answers", "gold", "text"]
    by_id = {row["item_id"]: row for row in rows}
    assert by_id["t0"]["label"] == "positive" and by_id["t0"]["answers"] == "3"
    assert float(by_id["t0"]["confidence"]) < 1.0 <= float(by_id["t1"]["confidence"]) + 1e-9
    assert by_id["g0"]["gold"] == "positive"

    capsys.readouterr()
    assert run(db, "export", "cli", "--format", "jsonl", "--raw") == 0
    raw = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(raw) == 12  # 4 regular items x 3 workers; nobody was given the gold item
    assert {"item_id", "worker", "label", "seconds", "answered_at"} <= set(raw[0])

    [row] = [line for line in tasksets_listing(db, capsys).splitlines() if line.startswith("cli")]
    done, answers, alpha = row.split()[2], row.split()[3], float(row.split()[-1])
    assert (done, answers) == ("4/4", "12")
    # Hand-checked: 11 "positive" and 1 "negative"; the one disagreement is exactly what chance
    # predicts for that label mix (observed = expected disagreement = 2/12), so alpha is 0.
    assert alpha == 0.0


def test_export_of_unknown_set_fails_clearly(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "export", "nope") == 2
    assert "no task set named 'nope'" in capsys.readouterr().err


def test_aggregate_offline_with_gold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("item,worker,label\na,w1,x\na,w2,x\na,w3,y\nb,w1,y\nb,w2,y\nb,w3,y\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("item,truth\na,x\nb,y\n")
    assert main(["aggregate", str(answers), "--method", "mv", "--gold", str(gold)]) == 0
    captured = capsys.readouterr()
    *table, last = captured.out.removeprefix("\ufeff").splitlines()
    rows = list(csv.reader(io.StringIO("\n".join(table))))
    assert rows[0] == ["item", "label", "confidence"]
    assert rows[1][:2] == ["a", "x"] and rows[2][:2] == ["b", "y"]
    assert last == "accuracy on gold items: 1.0000"


def test_aggregate_bad_row_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("a,w1,x\nb,w2\n")
    assert main(["aggregate", str(answers)]) == 2
    assert "line 2" in capsys.readouterr().err


def test_aggregate_reads_no_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A setting that stops every database command is nothing to a command that reads files.
    monkeypatch.setenv("LABELBOT_PORT", "eighty")
    answers = tmp_path / "answers.csv"
    answers.write_text("a,w1,x\nb,w2,y\n")

    assert main(["aggregate", str(answers), "--method", "mv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["a,x,1.0000", "b,y,1.0000"]
    assert main(["tasksets"]) == 2


def test_ctrl_c_stops_aggregate_with_a_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("tasksets.answers_csv.aggregate_csv", interrupted)
    answers = tmp_path / "answers.csv"
    answers.write_text("a,w1,x\n")

    assert main(["aggregate", str(answers)]) == 130
    assert capsys.readouterr().err == "labelbot: interrupted\n"


def test_reinstate_unknown_worker_says_so(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "workers", "reinstate", "42") == 1
    assert "not suspended" in capsys.readouterr().err


def test_run_without_token_explains(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABELBOT_BOT_TOKEN", raising=False)
    assert run(db, "run") == 2
    assert "@BotFather" in capsys.readouterr().err


def test_workers_list_shows_scores_and_why_someone_was_suspended(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def spam() -> None:
        store = LabelStore(create_engine(db), rng=random.Random(2))
        taskset_id = await store.load_taskset(make_spec("spam", items=40, gold=10, gold_ratio=0.3))
        await store.join(7, "Spammer", taskset_id=taskset_id)
        result = await store.next_item_for(7)
        while isinstance(result, ServedItem):
            outcome = await store.record_answer(result.token, 7, 2)
            assert isinstance(outcome, Recorded)
            result = outcome.next
        await store.close()

    assert run(db, "db", "upgrade") == 0
    asyncio.run(spam())
    capsys.readouterr()
    assert run(db, "workers", "list", "spam") == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:3] == ["7", "Spammer", "suspended"]
    assert "neutral 100%" in row and "too fast to read" in row  # the reason, in words
    assert run(db, "workers", "reinstate", "7") == 0
    assert run(db, "workers", "list", "nope") == 2


def labelbot(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it, with its own logging set up."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_commands_print_their_result_without_migration_chatter(db: str) -> None:
    loaded = labelbot("--database-url", db, "load", str(SAMPLE))
    assert loaded.returncode == 0
    assert loaded.stdout.startswith("loaded 'sentiment-v1'")
    assert loaded.stderr == ""
    listed = labelbot("--database-url", db, "tasksets")
    assert "sentiment-v1" in listed.stdout and listed.stderr == ""


def test_db_upgrade_and_verbose_show_the_migrations(db: str) -> None:
    upgraded = labelbot("--database-url", db, "db", "upgrade")
    assert upgraded.stdout == "database is at the latest revision\n"
    assert "Running upgrade" in upgraded.stderr
    verbose = labelbot("-v", "--database-url", db, "tasksets")
    assert "alembic" in verbose.stderr
