"""Shared fixtures: ``db_url`` over SQLite and PostgreSQL, ``store``, ``telegram`` and ``bot``.

PostgreSQL tests run against a database created for this run and dropped after it
(``LABELBOT_TEST_POSTGRES``, default the local server). Without a server they skip with a
reason, except under ``CI=true``, where a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.app import LabelBotApp, build_application, polling
from bot.fakegram import FakeTelegram
from bot.settings import Settings
from storage.engine import create_engine, execute_autocommit
from storage.migrate import upgrade
from storage.models import Base
from storage.store import LabelStore

POSTGRES_ADMIN_URL = os.environ.get(
    "LABELBOT_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


class Clock:
    """A hand-driven clock so lease expiry is tested without sleeping.

    Each reading moves it ``step`` seconds on, like a worker who takes a moment per item
    (a clock that stands still would trip the too-fast-to-read rule).
    """

    def __init__(self, step: float = 2.0) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def migrate_to(url: str, revision: str = "head") -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated to head, for the whole run."""
    name = f"labelbot_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(execute_autocommit(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except Exception as error:
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(migrate_to(url))
    yield url
    asyncio.run(
        execute_autocommit(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    )


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own with no tables, on each backend: for tests of the migrations."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without a server
    name = f"labelbot_migrate_{uuid.uuid4().hex[:8]}"
    asyncio.run(execute_autocommit(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(
        execute_autocommit(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for each test (migrating costs more than copying)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(migrate_to(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: a copied SQLite file, or the run's PostgreSQL truncated."""
    if request.param == "sqlite":
        path = tmp_path / "labelbot.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    asyncio.run(_truncate(url, tables))
    yield url


async def _truncate(url: str, tables: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(db_url: str, clock: Clock) -> AsyncIterator[LabelStore]:
    store = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(7))
    yield store
    await store.close()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def running_bot(
    telegram: FakeTelegram, db_url: str, clock: Clock, **settings: Any
) -> AsyncIterator[LabelBotApp]:
    """The real Application polling the fake Bot API, on the test's database."""
    config = Settings(
        bot_token=telegram.token,
        database_url=db_url,
        telegram_base_url=telegram.base_url,
        telegram_base_file_url=telegram.base_file_url,
        **settings,
    )
    application = build_application(config, migrate=False, clock=clock, rng=random.Random(3))
    async with polling(application, poll_timeout=1):
        yield application


@pytest.fixture
async def bot(
    telegram: FakeTelegram, db_url: str, clock: Clock, transport: str
) -> AsyncIterator[LabelBotApp]:
    """The bot as the end-to-end tests use it: no rate limiter, either HTTP transport."""
    async with running_bot(telegram, db_url, clock, http=transport, rate_limit=0) as application:
        yield application
