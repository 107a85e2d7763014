"""Engine factory: the one place where SQLite and PostgreSQL differ."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Generic, TypeVar

from sqlalchemy import Table, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Parameters per SQLite statement a load uses at most: SQLITE_MAX_VARIABLE_NUMBER's default
# since 3.32; builds that allow more gain nothing from longer statements.
SQLITE_PARAMETERS_WANTED = 32_766


@functools.cache
def sqlite_max_parameters() -> int:
    """The parameters one statement may take in the SQLite this Python links (999 before
    3.32, and whatever a distribution built it with), at most SQLITE_PARAMETERS_WANTED."""
    with closing(sqlite3.connect(":memory:")) as probe:
        limit = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return min(limit, SQLITE_PARAMETERS_WANTED)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_engine(url: str | URL, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine with the settings labelbot relies on for each backend.

    SQLite: WAL so readers never block the writer, a busy timeout, foreign keys on, and every
    transaction opened with ``BEGIN IMMEDIATE`` so a writer takes the lock up front instead of
    failing with "database is locked" when it upgrades a read lock mid-transaction.
    """
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine.sync_engine)
        return engine
    # No pre-ping: it would cost a round trip per transaction. A connection killed under us
    # (failover, pg_terminate_backend) fails its transaction instead, SQLAlchemy then drops the
    # pool's stale connections, and the labeling path's driver retries once
    # (storage/postgres_driver.py).
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, echo=echo)


def apply_sqlite_pragmas(dbapi_connection: Any, *, busy_timeout_ms: int) -> None:
    """The settings of every SQLite connection labelbot opens (engine and hot-path driver)."""
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "foreign_keys=ON",
        "synchronous=NORMAL",
        f"busy_timeout={busy_timeout_ms}",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see the "begin" hook below).
        dbapi_connection.isolation_level = None
        apply_sqlite_pragmas(dbapi_connection, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # An AUTOCOMMIT connection (``long_read``) holds no transaction, and so no lock.
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def long_read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads that take seconds, such as an export streaming its rows.

    SQLite: in autocommit mode, so each statement reads its own snapshot without the write
    lock that every transaction here takes up front (WAL readers never block the writer): the
    bot keeps recording answers meanwhile. PostgreSQL: in a transaction, which server-side
    cursors need; its reads block no writer anyway.
    """
    async with engine.connect() as connection:
        if is_sqlite(engine.url):
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened; the message says where (no password) and why."""


async def ensure_reachable(engine: AsyncEngine) -> None:
    """Open and close one connection, so that an unreachable database fails here, in one
    sentence, rather than as a driver's traceback in the middle of a command."""
    try:
        async with engine.connect():
            pass
    except (OSError, DBAPIError) as error:  # refused, unknown host, timeout, auth, no such file
        cause = error.orig if isinstance(error, DBAPIError) else error
        if isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror  # "Connection refused", without the errno
        else:
            reason = str(cause).strip().partition("\n")[0] or type(cause).__name__
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"cannot open the database {where}: {reason}") from error


async def execute_autocommit(url: str | URL, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE, pg_terminate_backend)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


Rows = Sequence[Sequence[Any]]


Batch = TypeVar("Batch")
# SQLite's batch: (INSERT of n rows, its n x columns parameters) per statement.
Statements = list[tuple[str, tuple[Any, ...]]]


@dataclass(frozen=True)
class RowWriter(Generic[Batch]):
    """Inserts batches of rows in one connection's transaction. `prepare` turns a batch into
    what `write` sends; it touches no connection, so a thread may run it while `write` waits
    on the database with the batch before."""

    prepare: Callable[[Rows], Batch]
    write: Callable[[Batch], Awaitable[None]]


async def row_writer(
    connection: AsyncConnection, table: Table, columns: Sequence[str]
) -> RowWriter[Any]:
    """A RowWriter of rows (values of `columns`, in that order) the fastest way each backend
    has. PostgreSQL: COPY (twice as fast as a multi-row INSERT for 100,000 items). SQLite:
    INSERTs of as many rows as a statement may take parameters; each runs without the GIL
    from start to end, so the next batch is read meanwhile (executemany takes the GIL back
    after every row, and then waits for it while the reading thread runs). Values reach the
    driver without SQLAlchemy's type conversions: give them as the driver takes them."""
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None

        async def copy(rows: Rows) -> None:
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))

        return RowWriter[Rows](prepare=lambda rows: rows, write=copy)
    quote = connection.dialect.identifier_preparer.quote
    into = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in columns)}) "
    one_row = f"({', '.join('?' * len(columns))})"
    rows_per_statement = sqlite_max_parameters() // len(columns)

    @functools.cache
    def insert_of(count: int) -> str:
        return into + "VALUES " + ", ".join([one_row] * count)

    def statements(rows: Rows) -> Statements:
        return [
            (insert_of(len(part)), tuple(chain.from_iterable(part)))
            for start in range(0, len(rows), rows_per_statement)
            if (part := rows[start : start + rows_per_statement])
        ]

    async def insert(batch: Statements) -> None:
        for statement, parameters in batch:
            await connection.exec_driver_sql(statement, parameters)

    return RowWriter[Statements](prepare=statements, write=insert)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
