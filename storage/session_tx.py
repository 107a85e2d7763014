"""The hot path's ``Transaction`` protocol over an ORM session, so that work written once
against it (a suspension's reversal, a reinstatement's restoring) runs in the answer's
transaction on the driver and in an ORM unit of work alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

from storage.driver import NO_PARAMS, FirstRowReader, Params


class SessionTransaction(FirstRowReader):
    """``storage.driver.Transaction`` for a session inside ``sessions.begin()``."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _execute(self, statement: ClauseElement, params: Params) -> Any:
        # Core execution on the session's connection: the statements are written for the
        # driver, and the ORM would read an UPDATE with parameters as a bulk update by key.
        connection = await self.session.connection()
        return await connection.execute(statement, dict(params))  # type: ignore[call-overload]

    async def rows(self, statement: ClauseElement, params: Params = NO_PARAMS) -> list[Any]:
        return list(await self._execute(statement, params))

    async def first(self, statement: ClauseElement, params: Params = NO_PARAMS) -> Any | None:
        return (await self._execute(statement, params)).first()

    async def run(self, statement: ClauseElement, params: Params = NO_PARAMS) -> int:
        return int((await self._execute(statement, params)).rowcount)
