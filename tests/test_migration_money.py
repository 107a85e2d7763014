"""Migration 0004 counts what a database already holds into the new counters: after upgrading a
database with answers and rewards, every consistency check holds and the boards rank it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from storage.engine import create_engine
from storage.migrate import upgrade
from storage.standing import Place
from storage.store import LabelStore
from tasksets.standing import Period
from tests.conftest import migrate_to

ROWS = [
    "INSERT INTO tasksets (id, name, title, instructions, question, labels, overlap_min, "
    "overlap_max, reward_minor, currency, gold_ratio, quality, status, created_at) VALUES "
    "(1, 'old', 'Old set', '', 'Q?', '[{\"value\": \"a\", \"text\": \"a\"}, "
    '{"value": "b", "text": "b"}]\', 1, 1, 3, \'USD\', 0.5, \'{}\', \'active\', '
    "'2026-01-05 10:00:00')",
    "INSERT INTO items (id, taskset_id, external_id, position, is_gold, gold_label, "
    "answer_count, in_flight, needed, open) VALUES "
    "(1, 1, 'g1', 0, true, 'a', 2, 0, 1, true), (2, 1, 'g2', 1, true, 'a', 2, 0, 1, true), "
    "(3, 1, 'g3', 2, true, 'a', 2, 0, 1, true), (4, 1, 't1', 3, false, NULL, 1, 0, 1, false), "
    "(5, 1, 't2', 4, false, NULL, 1, 0, 1, false)",
    "INSERT INTO workers (id, display_name, status, joined_at) VALUES "
    "(10, 'Ann', 'active', '2026-01-05 10:00:00'), (11, 'Bob', 'active', '2026-01-05 10:00:00')",
    "INSERT INTO memberships (worker_id, taskset_id, status, gold_answers, gold_correct, "
    "answers, joined_at) VALUES (10, 1, 'active', 3, 3, 5, '2026-01-05 10:00:00'), "
    "(11, 1, 'suspended', 3, 0, 3, '2026-01-05 10:00:00')",
    "INSERT INTO assignments (id, token, worker_id, item_id, taskset_id, state, served_at, "
    "expires_at) VALUES "
    + ", ".join(
        f"({n}, 'tok{n}', {w}, {i}, 1, 'answered', '2026-01-0{d} 10:00:00', "
        f"'2026-01-0{d} 10:10:00')"
        for n, w, i, d in (
            (1, 10, 1, 5),
            (2, 10, 2, 5),
            (3, 10, 3, 6),
            (4, 10, 4, 6),
            (5, 10, 5, 7),
            (6, 11, 1, 7),
            (7, 11, 2, 7),
            (8, 11, 3, 7),
        )
    ),
    "INSERT INTO answers (id, assignment_id, worker_id, item_id, taskset_id, kind, label, "
    "seconds, created_at) SELECT id, id, worker_id, item_id, 1, 'label', "
    "CASE WHEN worker_id = 10 THEN 'a' ELSE 'b' END, 3.0, served_at FROM assignments",
    "INSERT INTO ledger_entries (worker_id, taskset_id, answer_id, kind, amount_minor, "
    "currency, created_at) SELECT worker_id, 1, id, 'reward', 3, 'USD', created_at FROM answers",
]


@pytest.fixture
def url_at_0003(empty_database_url: str) -> str:
    """An empty database migrated to revision 0003 (before money and standing)."""
    asyncio.run(migrate_to(empty_database_url, "0003"))
    return empty_database_url


async def test_existing_answers_and_rewards_are_counted(url_at_0003: str) -> None:
    engine = create_engine(url_at_0003)
    async with engine.begin() as connection:
        for statement in ROWS:
            await connection.execute(text(statement))
    await upgrade(engine)
    store = LabelStore(engine)
    try:
        violations = await store.consistency_violations()
        assert violations == dict.fromkeys(violations, 0)
        [ann] = await store.ledger.balances(10)
        assert (ann.available_minor, ann.pending_minor) == (15, 0)  # held for 0 hours
        board = await store.standing.board(1, Period.ALL, 10)
        # Bob is suspended: off the board. Ann has 3 control answers: ranked.
        assert [(row.worker_id, row.answers) for row in board.rows] == [(10, 5)]
        assert isinstance(board.caller, Place) and board.caller.rank == 1
        days = {d.day.isoformat(): d.answers for d in await store.standing.last_days(10, 9999)}
        assert (days["2026-01-05"], days["2026-01-06"], days["2026-01-07"]) == (2, 2, 1)
    finally:
        await store.close()
