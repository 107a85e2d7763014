"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.engine import create_engine
from storage.migrate import HEAD_REVISION, current_revision, upgrade
from storage.models import Base


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_migrations(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []


def test_head_revision_is_alembics_head() -> None:
    """A database at HEAD_REVISION skips Alembic at start-up: a new migration must move it."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


async def test_upgrade_runs_alembic_only_below_head(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert await current_revision(engine) is None
        await upgrade(engine, "0007")
        assert await current_revision(engine) == "0007"
        await upgrade(engine)  # from 0007: not skipped although a version is there
        assert await current_revision(engine) == HEAD_REVISION
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("answers")]
            )
        assert "withdrawn_at" in columns  # 0008's column
        await upgrade(engine)  # at head: nothing to do, and no error
    finally:
        await engine.dispose()
