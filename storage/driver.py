"""Core statements compiled once and run straight on the database driver: the hot path's engine.

``Connection.execute`` spends about 35 µs per statement on cache keys, an execution context and
a result object, more than SQLite needs to run one of the labeling statements, and on
PostgreSQL it adds a greenlet hop per round trip. So the hot path compiles each Core statement
once per dialect, keeps SQLAlchemy's own type conversions (rows read and written here look the
same as through the ORM), and runs the SQL on the driver:

* SQLite: one stdlib ``sqlite3`` connection, used on the event loop. A transaction is a few
  hundred microseconds of C code that never waits for a network, so running it inline costs
  less than handing it to a thread. It takes the write lock up front (``BEGIN IMMEDIATE``)
  without a busy timeout: while another connection holds the lock it yields to the event loop
  and tries again, instead of blocking the loop the other writer may need to finish.
* PostgreSQL (``storage/postgres_driver.py``): an asyncpg pool of its own, each connection
  caching its prepared statements.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import namedtuple
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from typing import Any, Concatenate, Final, Generic, ParamSpec, Protocol, TypeVar

from sqlalchemy import Float
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from storage.engine import SQLITE_BUSY_TIMEOUT_MS, apply_sqlite_pragmas, is_sqlite

T = TypeVar("T")
DriverConnection = TypeVar("DriverConnection")
P = ParamSpec("P")
Params = Mapping[str, Any]
Processor = Callable[[Any], Any] | None

NO_PARAMS: Final[Params] = {}
_REQUIRED: Final = object()
# Waits between tries while another SQLite connection holds the write lock.
FIRST_BUSY_WAIT = 0.0005
LONGEST_BUSY_WAIT = 0.02
SQLITE_LOCK_ERRORS = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class CompiledStatement:
    """One Core statement as SQL for one dialect, with its parameter order and type processors.

    Values written into the statement (``.values(state=AssignmentState.LEASED)``, ``limit(1)``)
    are constants: unlike with ``Connection.execute``, a parameter that happens to have the same
    name (SQLAlchemy names such binds after their column) does not replace them.
    """

    __slots__ = ("_binds", "_processors", "_row", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        # (name, _REQUIRED, processor) for a parameter, (name, converted value, None) for a
        # constant, in the order of the placeholders.
        self._binds: list[tuple[str, Any, Processor]] = []
        defaults = python_side_defaults(compiled)
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._binds.append((name, _REQUIRED, processor))
            else:
                value = defaults.get(name, bind.effective_value)
                self._binds.append((name, processor(value) if processor else value, None))
        columns = list(getattr(statement, "exported_columns", ()))
        names = [column.key or f"column{index}" for index, column in enumerate(columns)]
        self._row: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]
        processors = [result_processor(column.type, dialect) for column in columns]
        self._processors = processors if any(processors) else None

    def arguments(self, params: Params) -> list[Any]:
        """Positional driver arguments from named parameters, converted as SQLAlchemy would."""
        values = []
        for name, constant, processor in self._binds:
            if constant is not _REQUIRED:
                values.append(constant)
                continue
            if name not in params:
                raise KeyError(f"the statement needs the parameter {name!r}: {self.sql}")
            value = params[name]
            values.append(processor(value) if processor else value)
        return values

    def row(self, values: Sequence[Any]) -> Any:
        """A named tuple of the returned columns, converted as SQLAlchemy would."""
        processors = self._processors
        if processors is None:
            return self._row._make(values)
        pairs = zip(processors, values, strict=True)
        return self._row._make([convert(value) if convert else value for convert, value in pairs])


def python_side_defaults(compiled: SQLCompiler) -> dict[str, Any]:
    """The values of the ``default=`` of columns an INSERT or UPDATE leaves out.

    ``Connection.execute`` computes them per execution; here a scalar default is compiled in as
    a constant, and a callable one (which would need an execution context) is refused.
    """
    defaults: dict[str, Any] = {}
    for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
        default = column.default if compiled.isinsert else column.onupdate
        if default is None or not default.is_scalar:
            raise ValueError(
                f"column {column} has a Python-side default the driver cannot compute: "
                "give its value in the statement"
            )
        defaults[column.key] = default.arg  # type: ignore[attr-defined]
    return defaults


def result_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Processor:
    """SQLAlchemy's conversion of a returned value (text to datetime on SQLite, ...)."""
    if isinstance(column_type, Float) and not column_type.asdecimal:
        # Both drivers return floats already; the asyncpg dialect would need the column's type
        # OID from a cursor to tell, which a statement compiled ahead of time does not have.
        return None
    return column_type.dialect_impl(dialect).result_processor(dialect, None)


async def driver_chunks(
    connection: AsyncConnection, statement: ClauseElement, rows: int
) -> AsyncGenerator[Sequence[Sequence[Any]], None]:
    """The rows of a read on ``connection`` (``long_read``), in chunks of ``rows``, straight
    from the driver's cursor: each row a tuple of the values as the driver gives them (asyncpg:
    a ``Record``), without SQLAlchemy's row objects or its conversions of returned values. For
    reads of millions of rows, of columns the drivers give as wanted (numbers and text):
    SQLAlchemy's rows cost more than the driver's own work. Values in the statement are sent
    as SQLAlchemy would send them.
    """
    compiled = CompiledStatement(statement, connection.dialect)
    arguments = compiled.arguments(NO_PARAMS)
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "sqlite":  # aiosqlite: fetches on its own thread
        cursor = await driver.execute(compiled.sql, arguments)
        try:
            while chunk := await cursor.fetchmany(rows):
                yield chunk
        finally:
            await cursor.close()
        return
    # asyncpg: a server-side cursor lives in a transaction (nested in one the connection has).
    async with driver.transaction():
        cursor = await driver.cursor(compiled.sql, *arguments)
        while chunk := await cursor.fetch(rows):
            yield chunk


class CompiledStatements(dict[ClauseElement, CompiledStatement]):
    """Each statement compiled the first time it runs, then looked up by identity."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        self.dialect = dialect

    def __missing__(self, statement: ClauseElement) -> CompiledStatement:
        compiled = self[statement] = CompiledStatement(statement, self.dialect)
        return compiled


class Transaction(Protocol):
    """What hot-path work may do inside its transaction."""

    async def rows(self, statement: ClauseElement, params: Params = NO_PARAMS) -> list[Any]:
        """All rows the statement returns, as named tuples."""
        ...

    async def first(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any | None:
        """The first returned row, or None."""
        ...

    async def one(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any:
        """The one row the statement returns; raises ``LookupError`` when there is none."""
        ...

    async def value(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any:
        """The first column of the one row the statement returns."""
        ...

    async def run(self, statement: ClauseElement, params: Params = NO_PARAMS) -> int:
        """Execute a statement that returns no rows; returns how many rows it changed."""
        ...


class FirstRowReader:
    """``one`` and ``value`` of a ``Transaction``, on top of its ``first``."""

    __slots__ = ()

    async def first(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any | None:
        raise NotImplementedError

    async def one(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any:
        row = await self.first(statement, params)
        if row is None:
            raise LookupError(f"no row returned by: {statement}")
        return row

    async def value(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any:
        return (await self.one(statement, params))[0]


class TransactionBase(FirstRowReader, Generic[DriverConnection]):
    """A driver connection in a transaction."""

    __slots__ = ("_connection", "_statements")

    def __init__(self, connection: DriverConnection, statements: CompiledStatements) -> None:
        self._connection = connection
        self._statements = statements


Work = Callable[Concatenate[Transaction, P], Coroutine[Any, Any, T]]


class Driver(Protocol):
    async def transaction(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``work(transaction, ...)`` in one transaction and commit it."""
        ...

    async def close(self) -> None: ...


def open_driver(url: URL, *, pool_size: int) -> Driver:
    """The hot-path driver for the database an engine points at."""
    if is_sqlite(url):
        return SQLiteDriver(url)
    # Imported here: asyncpg comes with the ``postgres`` extra, which SQLite users need not have.
    from storage.postgres_driver import PostgresDriver

    return PostgresDriver(url, pool_size=pool_size)


# ------------------------------------------------------------------------------ SQLite


class SQLiteTransaction(TransactionBase[sqlite3.Connection]):
    __slots__ = ()

    async def rows(self, statement: ClauseElement, params: Params = NO_PARAMS) -> list[Any]:
        compiled = self._statements[statement]
        cursor = self._connection.execute(compiled.sql, compiled.arguments(params))
        return [compiled.row(values) for values in cursor]

    async def first(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any | None:
        rows = await self.rows(statement, params)
        return rows[0] if rows else None

    async def run(self, statement: ClauseElement, params: Params = NO_PARAMS) -> int:
        compiled = self._statements[statement]
        return self._connection.execute(compiled.sql, compiled.arguments(params)).rowcount


class SQLiteDriver:
    """The hot path on SQLite: one connection on the event loop's thread."""

    def __init__(self, url: URL) -> None:
        if not url.database or url.database == ":memory:":
            raise ValueError("labelbot needs an SQLite database file, not an in-memory database")
        self._path = url.database
        self._connection: sqlite3.Connection | None = None
        self._statements = CompiledStatements(SQLiteDialect_pysqlite())

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below.
        connection = sqlite3.connect(self._path, isolation_level=None)
        # No busy timeout: waiting for the lock would block the event loop (see above).
        apply_sqlite_pragmas(connection, busy_timeout_ms=0)
        self._connection = connection
        return connection

    async def transaction(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
        wait = FIRST_BUSY_WAIT
        while True:
            connection = self._connection or self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    transaction = SQLiteTransaction(connection, self._statements)
                    result = finish_without_waiting(work(transaction, *args, **kwargs))
                    connection.execute("COMMIT")
                    return result
                finally:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF not in SQLITE_LOCK_ERRORS:
                    raise
                if loop.time() + wait > deadline:
                    raise
            # Another connection is writing: let it finish, then try the whole work again.
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_BUSY_WAIT)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def finish_without_waiting(step: Coroutine[Any, Any, T]) -> T:
    """Run SQLite work to its end at once. It holds the connection's only transaction, so no
    other task may run in the middle of it: work that would wait is a programming error."""
    try:
        step.send(None)
    except StopIteration as finished:
        return finished.value
    step.close()
    raise RuntimeError("hot-path work on SQLite must not wait for anything")
