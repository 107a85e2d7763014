"""The hot path's driver on PostgreSQL: asyncpg, with a pool of its own (see storage/driver.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.sql import ClauseElement

from storage.driver import (
    NO_PARAMS,
    CompiledStatements,
    P,
    Params,
    T,
    TransactionBase,
    Work,
)

log = logging.getLogger(__name__)

# What using a pooled asyncpg connection whose server process is gone raises (failover,
# restart, pg_terminate_backend): the transaction was rolled back, so it can run again on a
# new connection. A connection killed while idle has already read the server's farewell and
# fails with InternalClientError ("another operation is in progress") before sending anything.
CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,
    ConnectionError,
)


class PostgresTransaction(TransactionBase[asyncpg.Connection]):
    __slots__ = ()

    async def rows(self, statement: ClauseElement, params: Params = NO_PARAMS) -> list[Any]:
        compiled = self._statements[statement]
        records = await self._connection.fetch(compiled.sql, *compiled.arguments(params))
        return [compiled.row(record) for record in records]

    async def first(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any | None:
        compiled = self._statements[statement]
        record = await self._connection.fetchrow(compiled.sql, *compiled.arguments(params))
        return None if record is None else compiled.row(record)

    async def run(self, statement: ClauseElement, params: Params = NO_PARAMS) -> int:
        compiled = self._statements[statement]
        status: str = await self._connection.execute(compiled.sql, *compiled.arguments(params))
        return int(status.rpartition(" ")[2])  # "UPDATE 3", "INSERT 0 1"


async def _json_as_sqlalchemy_does(connection: asyncpg.Connection) -> None:
    # SQLAlchemy's JSON type hands asyncpg serialized text and expects decoded values back.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=str, decoder=json.loads, schema="pg_catalog")


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Nothing to reset between transactions: the hot path changes no session state, and
    asyncpg's default reset would cost a round trip per transaction."""


class PostgresDriver:
    """The hot path on PostgreSQL: an asyncpg pool opened on first use."""

    def __init__(self, url: URL, *, pool_size: int) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._statements = CompiledStatements(PGDialect_asyncpg())

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    init=_json_as_sqlalchemy_does,
                    reset=_keep_session,
                )
        return self._pool

    async def transaction(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        pool = self._pool or await self._open()
        try:
            return await self._run(pool, work, *args, **kwargs)
        except CONNECTION_LOST:
            # The transaction was rolled back with its connection; run it again on a fresh one.
            # (Had the COMMIT gone through, the rerun sees a duplicate.)
            log.warning("database connection lost; retrying on a new one")
            # Whatever killed one connection (a restart, a failover) likely killed its siblings.
            await pool.expire_connections()
            return await self._run(pool, work, *args, **kwargs)

    async def _run(
        self, pool: asyncpg.Pool, work: Work[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        async with pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                result = await work(
                    PostgresTransaction(connection, self._statements), *args, **kwargs
                )
            except CONNECTION_LOST:
                raise  # the transaction went with its connection: nothing to roll back
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()
            return result

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
