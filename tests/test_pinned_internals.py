"""The private internals labelbot relies on, each named, so an upgrade that moves one fails here
with a message saying what to fix, not somewhere deep in the answer loop.

pyproject.toml caps each of these dependencies below its next minor/major version; when raising
a cap, run this file first.
"""

from __future__ import annotations

import inspect

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.sql.compiler import SQLCompiler
from telegram.ext import ExtBot

from storage.driver import CompiledStatement


def test_ptb_extbot_post_is_there_for_labeling_bot() -> None:
    post = getattr(ExtBot, "_post", None)
    assert post is not None and inspect.iscoroutinefunction(post), (
        "python-telegram-bot no longer has ExtBot._post, which handlers/labeling_bot.py calls "
        "for the answer loop's sends and edits: port LabelingBot or lower the version cap"
    )
    parameters = list(inspect.signature(post).parameters)
    assert parameters[:3] == ["self", "endpoint", "data"], (
        f"ExtBot._post takes {parameters} now; handlers/labeling_bot.py passes (endpoint, data)"
    )


def test_sqlalchemy_compiler_exposes_what_the_driver_reads() -> None:
    statement = select(bindparam("wanted"), literal(5))
    compiled = statement.compile(dialect=SQLiteDialect_pysqlite())
    assert isinstance(compiled, SQLCompiler)
    internals = ("positiontup", "binds", "string", "insert_prefetch", "update_prefetch")
    missing = [name for name in internals if not hasattr(compiled, name)]
    assert not missing, (
        f"SQLAlchemy's SQLCompiler lost {missing}, which storage/driver.py's CompiledStatement "
        "reads to run statements on the driver: port it or lower the version cap"
    )
    binds = [compiled.binds[name] for name in compiled.positiontup or ()]
    assert [bind.required for bind in binds] == [True, False], (
        "BindParameter.required no longer tells parameters from constants (storage/driver.py)"
    )
    assert binds[1].effective_value == 5, (
        "BindParameter.effective_value no longer holds a constant's value (storage/driver.py)"
    )


def test_the_driver_runs_a_statement_as_sqlalchemy_compiles_it() -> None:
    compiled = CompiledStatement(select(bindparam("wanted"), literal(5)), SQLiteDialect_pysqlite())
    assert compiled.arguments({"wanted": "x"}) == ["x", 5]


def test_the_driver_writes_a_columns_scalar_default() -> None:
    """SQLAlchemy leaves a Python-side default to the execution context (``insert_prefetch``);
    the driver compiles it in, or a NOT NULL column with ``default=`` would get NULL."""
    table = Table("t", MetaData(), Column("id", Integer), Column("flag", Boolean, default=True))
    statement = insert(table).values(id=bindparam("id"))
    compiled = CompiledStatement(statement, SQLiteDialect_pysqlite())
    assert compiled.arguments({"id": 1}) == [1, 1]
