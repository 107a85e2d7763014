"""Two ``labelbot run`` webhook processes on one PostgreSQL database, one of them SIGKILLed midway:
the crowd still labels the whole set, and no item gets more answers than its overlap."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.load import (
    BotProcesses,
    Person,
    fresh_database,
    wait_for_webhooks,
    webhook_environment,
)
from bot.fakegram import FakeTelegram
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.store import LabelStore
from tests.factories import make_spec

WORKERS = 20
ITEMS = 30
OVERLAP = 2
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def postgres_or_skip(tmp_path: Path) -> None:
    try:
        async with fresh_database("postgres", tmp_path):
            pass
    except Exception as error:  # whatever the driver raises, the server is not there
        message = f"PostgreSQL not reachable: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


async def test_two_processes_finish_a_set_when_one_is_killed(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    await postgres_or_skip(tmp_path)
    async with fresh_database("postgres", tmp_path) as url:
        engine = create_engine(url)
        await upgrade(engine)
        # Simulated people tap at machine speed: the too-fast rule would suspend them.
        spec = make_spec(items=ITEMS, overlap=OVERLAP, quality={"min_median_seconds": 0})
        await LabelStore(engine).load_taskset(spec)
        env = webhook_environment(telegram, url)
        bots = BotProcesses(2, env, tmp_path / "bots.log")
        await bots.start()
        try:
            await wait_for_webhooks(telegram, 2)
            people = [
                Person(telegram.user(100 + n, f"W{n}"), random.Random(n)) for n in range(WORKERS)
            ]
            crowd = asyncio.gather(*(person.work() for person in people))
            await wait_for_answers(engine, ITEMS * OVERLAP // 2)
            await bots.kill_one()
            await asyncio.wait_for(crowd, 45)
        finally:
            await bots.stop()

        async with engine.connect() as connection:
            per_item: dict[str, int] = dict(
                (
                    await connection.execute(
                        text(
                            "SELECT i.external_id, count(a.id) FROM items i "
                            "LEFT JOIN answers a ON a.item_id = i.id GROUP BY i.external_id"
                        )
                    )
                ).all()
            )
        store = LabelStore(engine)
        violations = await store.consistency_violations()
        await store.close()

    assert all(person.done for person in people)
    assert per_item == {f"t{i}": OVERLAP for i in range(ITEMS)}
    assert violations == dict.fromkeys(violations, 0)
    for person in people:
        shown = Counter(person.contents.values())
        assert [text for text, times in shown.items() if times > 1] == [], person.user


async def wait_for_answers(engine: AsyncEngine, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            if (await connection.scalar(text("SELECT count(*) FROM answers")) or 0) >= count:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"fewer than {count} answers within 30 s")
