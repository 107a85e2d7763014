"""The hot path's driver layer: statements compiled once, SQLite on the event loop, asyncpg."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import make_url

from storage.driver import Driver, Transaction, open_driver
from storage.engine import create_engine
from storage.models import Assignment, AssignmentState, Worker, WorkerStatus
from storage.store import LabelStore
from tests.test_store import join, make_spec, serve

WORKER = 77
MOMENT = datetime(2026, 11, 28, 6, 30, 15, 123456, tzinfo=UTC)
WORKER_ROW = select(Worker.id, Worker.status, Worker.joined_at).where(
    Worker.id == bindparam("worker")
)
RENAME = (
    update(Worker).where(Worker.id == bindparam("worker")).values(display_name=bindparam("name"))
)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "driver.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def read_worker(tx: Transaction, worker_id: int) -> object:
    return await tx.first(WORKER_ROW, {"worker": worker_id})


async def test_rows_read_on_the_driver_match_the_orm(db_url: str) -> None:
    """Datetimes, enums and booleans come back exactly as SQLAlchemy's ORM gives them."""
    store = LabelStore(create_engine(db_url))
    driver = open_driver(make_url(db_url), pool_size=2)
    try:
        async with store.sessions.begin() as session:
            session.add(
                Worker(
                    id=WORKER, display_name="Ada", status=WorkerStatus.INACTIVE, joined_at=MOMENT
                )
            )
        row = await driver.transaction(read_worker, WORKER)
        assert row is not None
        assert row.status == WorkerStatus.INACTIVE and isinstance(row.status, WorkerStatus)
        assert row.joined_at.replace(tzinfo=UTC) == MOMENT  # SQLite keeps no zone: stored as UTC
        assert await driver.transaction(read_worker, WORKER + 1) is None
    finally:
        await driver.close()
        await store.close()


async def test_values_written_on_the_driver_read_back_through_the_orm(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=2, overlap=1))
    await join(store, WORKER)
    served = await serve(store, WORKER)
    async with store.sessions() as session:
        lease = await session.scalar(select(Assignment).where(Assignment.token == served.token))
    assert lease is not None
    assert lease.state == AssignmentState.LEASED
    assert lease.expires_at.replace(tzinfo=UTC) - lease.served_at.replace(tzinfo=UTC) == (
        store.labeling.lease
    )


async def test_a_missing_parameter_is_named(db_url: str) -> None:
    driver = open_driver(make_url(db_url), pool_size=2)

    async def forgets_the_worker(tx: Transaction) -> object:
        return await tx.first(WORKER_ROW, {})

    try:
        with pytest.raises(KeyError, match="'worker'"):
            await driver.transaction(forgets_the_worker)
    finally:
        await driver.close()


async def test_work_that_fails_changes_nothing(db_url: str, store: LabelStore) -> None:
    async with store.sessions.begin() as session:
        session.add(Worker(id=WORKER, display_name="Ada", joined_at=MOMENT))
    driver = open_driver(make_url(db_url), pool_size=2)

    async def rename_then_fail(tx: Transaction) -> None:
        assert await tx.run(RENAME, {"worker": WORKER, "name": "Grace"}) == 1
        raise ValueError("the work changed its mind")

    try:
        with pytest.raises(ValueError, match="changed its mind"):
            await driver.transaction(rename_then_fail)
    finally:
        await driver.close()
    async with store.sessions() as session:
        assert await session.scalar(select(Worker.display_name).where(Worker.id == WORKER)) == "Ada"


async def test_sqlite_waits_for_another_writer_without_blocking_the_loop(
    sqlite_url: str,
) -> None:
    """Another connection holds SQLite's write lock: the hot path yields to the event loop and
    runs as soon as the lock is free, instead of blocking the loop the other writer needs."""
    store = LabelStore(create_engine(sqlite_url))
    driver = open_driver(make_url(sqlite_url), pool_size=1)
    async with store.sessions.begin() as session:
        session.add(Worker(id=WORKER, display_name="Ada", joined_at=MOMENT))

    async def rename(tx: Transaction, name: str) -> int:
        return await tx.run(RENAME, {"worker": WORKER, "name": name})

    try:
        async with store.engine.begin() as other:  # BEGIN IMMEDIATE: the write lock
            await other.execute(
                text("UPDATE workers SET display_name = 'Other' WHERE id = :id"), {"id": WORKER}
            )
            waiting = asyncio.create_task(driver.transaction(rename, "Hot path"))
            await asyncio.sleep(0.05)  # the loop keeps running this test meanwhile
            assert not waiting.done()
        assert await asyncio.wait_for(waiting, 5) == 1
        async with store.sessions() as session:
            assert (
                await session.scalar(select(Worker.display_name).where(Worker.id == WORKER))
                == "Hot path"
            )
    finally:
        await driver.close()
        await store.close()


async def test_sqlite_work_must_not_wait(sqlite_url: str) -> None:
    """SQLite work runs to its end at once; work that would let another task in is refused,
    and its transaction is rolled back."""
    driver = open_driver(make_url(sqlite_url), pool_size=1)

    async def waits(tx: Transaction) -> None:
        # The driver applies no Python-side column defaults: every value is given.
        ada = {"id": WORKER, "display_name": "Ada", "status": "active", "joined_at": MOMENT}
        await tx.run(insert(Worker).values(ada))
        await asyncio.sleep(0)

    async def count_workers(tx: Transaction) -> int:
        return int(await tx.value(select(func.count()).select_from(Worker)))

    try:
        with pytest.raises(RuntimeError, match="must not wait"):
            await driver.transaction(waits)
        assert await driver.transaction(count_workers) == 0
    finally:
        await driver.close()


async def test_postgres_retries_once_on_a_killed_connection(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends the connection in the middle of a transaction: it runs again on a new
    connection, and the first attempt left nothing behind."""
    driver: Driver = open_driver(make_url(postgres_url), pool_size=2)
    attempts: list[int] = []

    async def kill_own_connection_once(tx: Transaction) -> int:
        attempts.append(await tx.value(select(func.pg_backend_pid())))
        if len(attempts) == 1:
            await tx.value(select(func.pg_terminate_backend(func.pg_backend_pid())))
        return len(attempts)

    try:
        assert await driver.transaction(kill_own_connection_once) == 2
    finally:
        await driver.close()
    assert attempts[0] != attempts[1]
    assert "database connection lost; retrying" in caplog.text


def test_in_memory_sqlite_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        open_driver(make_url("sqlite+aiosqlite:///:memory:"), pool_size=1)


async def test_values_written_into_a_statement_are_not_replaced_by_parameters(
    db_url: str, store: LabelStore
) -> None:
    """SQLAlchemy names the bind of ``.values(status=...)`` "status"; a parameter of that name
    meant for another statement of the same step must not change what this one writes."""
    add_active_worker = insert(Worker).values(
        id=bindparam("worker"), display_name="Ada", status=WorkerStatus.ACTIVE, joined_at=MOMENT
    )
    driver = open_driver(make_url(db_url), pool_size=2)

    async def add(tx: Transaction) -> object:
        await tx.run(add_active_worker, {"worker": WORKER, "status": WorkerStatus.BANNED})
        return await tx.first(WORKER_ROW, {"worker": WORKER})

    try:
        row = await driver.transaction(add)
    finally:
        await driver.close()
    assert row is not None and row.status == WorkerStatus.ACTIVE
