"""Migration 0006 (typed and voice answers, reasons, the reviewer level) keeps what a database
holds, lets a gold answer be a whole text, and can be taken back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.engine import create_engine
from storage.migrate import alembic_config, upgrade
from tests.conftest import migrate_to

OLD_ROWS = [
    "INSERT INTO tasksets (id, name, title, instructions, question, labels, overlap_min, "
    "overlap_max, reward_minor, currency, gold_ratio, quality, status, created_at) VALUES "
    "(1, 'old', 'Old set', '', 'Q?', '[{\"value\": \"a\", \"text\": \"a\"}, "
    '{"value": "b", "text": "b"}]\', 1, 1, 3, \'USD\', 0.5, \'{}\', \'active\', '
    "'2026-01-05 10:00:00')",
    "INSERT INTO items (id, taskset_id, external_id, position, is_gold, gold_label, "
    "answer_count, in_flight, needed, open) VALUES (1, 1, 'g1', 0, true, 'a', 0, 0, 1, true)",
]
LONG_GOLD = "the quick brown fox jumps over the lazy dog " * 5


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_upgrade_keeps_old_sets_and_takes_gold_texts(empty_database_url: str) -> None:
    await migrate_to(empty_database_url, "0005")
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            for statement in OLD_ROWS:
                await connection.execute(text(statement))
        await upgrade(engine)
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    text("SELECT answer, max_length, aggregate, review FROM tasksets")
                )
            ).one()
            assert tuple(row) == ("labels", 1000, "vote", None)
            await connection.execute(text("UPDATE items SET gold_label = :g"), {"g": LONG_GOLD})
            stored = await connection.scalar(text("SELECT gold_label FROM items"))
            assert stored == LONG_GOLD
            await connection.execute(text("UPDATE items SET gold_label = 'a'"))
            await connection.run_sync(_downgrade, "0005")
        await upgrade(engine)  # and forward again
        async with engine.connect() as connection:
            gold = await connection.scalar(text("SELECT gold_label FROM items"))
            assert gold == "a"
    finally:
        await engine.dispose()
