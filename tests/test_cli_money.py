"""``labelbot payouts`` and ``labelbot bonuses`` as a coordinator runs them (SQLite; the ledger's
storage tests cover both databases)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bot.cli import main
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.results import Recorded, ServedItem
from storage.store import LabelStore
from tests.factories import make_spec

BONUS = {"min_gold_accuracy": 0.5, "min_answers": 2, "percent": 50}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def run(db: str, *args: str) -> int:
    return main(["--database-url", db, *args])


def crowd(db: str, answers: dict[int, tuple[str, int]]) -> None:
    """Workers (id: (name, answers)) label a set that pays 0.25 per answer."""

    async def work() -> None:
        engine = create_engine(db)
        await upgrade(engine)
        store = LabelStore(engine, rng=random.Random(1))
        try:
            taskset_id = await store.load_taskset(
                make_spec("pay", items=20, overlap=3, reward="0.25", bonus=BONUS)
            )
            for worker, (name, count) in answers.items():
                await store.join(worker, name, taskset_id=taskset_id)
                result = await store.next_item_for(worker)
                for _ in range(count):
                    assert isinstance(result, ServedItem)
                    outcome = await store.record_answer(result.token, worker, 0)
                    assert isinstance(outcome, Recorded)
                    result = outcome.next
        finally:
            await store.close()

    asyncio.run(work())


def test_payouts_list_formula_safe_rows_and_pay_each_file_once(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crowd(db, {1: ("=SUM(A1:A9)", 4), 2: ("Bob", 2), 3: ("Cy", 1)})
    out = tmp_path / "payouts.csv"
    assert run(db, "payouts", "--min", "0.50", "--out", str(out)) == 0
    assert "batch 1: 2 workers, 1.50 USD in all" in capsys.readouterr().out
    lines = out.read_bytes().decode("utf-8").splitlines()
    assert lines == [
        "\ufeffworker_id,display_name,amount,currency,batch_id",
        "1,'=SUM(A1:A9),1.00,USD,1",
        "2,Bob,0.50,USD,1",
    ]
    # Listed money is reserved: a second listing has nobody.
    again = tmp_path / "again.csv"
    assert run(db, "payouts", "--min", "0.50", "--out", str(again)) == 0
    assert len(again.read_text(encoding="utf-8-sig").splitlines()) == 1

    assert run(db, "payouts", "--mark-paid", str(out)) == 0
    assert "batch 1 marked paid: 2 workers, 1.50 USD in all" in capsys.readouterr().out
    assert run(db, "payouts", "--mark-paid", str(out)) == 2
    assert "already marked paid" in capsys.readouterr().err

    crowd_more(db, worker=3, count=2)
    fresh = tmp_path / "fresh.csv"
    assert run(db, "payouts", "--min", "0.50", "--out", str(fresh)) == 0
    tampered = tmp_path / "tampered.csv"
    tampered.write_text(
        fresh.read_text(encoding="utf-8").replace(",0.75,", ",7.50,"), encoding="utf-8"
    )
    assert run(db, "payouts", "--mark-paid", str(tampered)) == 2
    assert "no longer match" in capsys.readouterr().err
    assert run(db, "payouts", "--cancel", "2") == 0
    assert run(db, "payouts", "--mark-paid", str(fresh)) == 2
    assert "cancelled" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # an action is required
        run(db, "payouts", "--min", "0.50")
    assert usage.value.code == 2
    assert run(db, "payouts", "--out", str(fresh)) == 2  # --out needs --min


def crowd_more(db: str, *, worker: int, count: int) -> None:
    async def work() -> None:
        store = LabelStore(create_engine(db), rng=random.Random(2))
        try:
            result = await store.next_item_for(worker)
            for _ in range(count):
                assert isinstance(result, ServedItem)
                outcome = await store.record_answer(result.token, worker, 0)
                assert isinstance(outcome, Recorded)
                result = outcome.next
        finally:
            await store.close()

    asyncio.run(work())


def test_bonuses_are_granted_once(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    crowd(db, {1: ("Ann", 4), 2: ("Bob", 1)})
    capsys.readouterr()
    assert run(db, "bonuses", "pay") == 0
    output = capsys.readouterr().out
    assert "worker 1: +0.50 USD (50% for 80% accuracy on 0 control questions" in output
    assert "worker 2" not in output
    assert run(db, "bonuses", "pay") == 0
    assert "no new bonuses" in capsys.readouterr().out
    assert run(db, "bonuses", "nope") == 2
