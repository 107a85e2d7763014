"""Changing a table's declared schema on SQLite without copying the table.

SQLite's ALTER TABLE cannot change a column's type or a CHECK constraint, and Alembic's batch
mode copies the table instead: for a parent table with foreign keys on, dropping the old copy
deletes its children (ON DELETE CASCADE), and every partial index must be rebuilt. SQLite
documents another way for changes that do not alter the stored data (a declared type, a CHECK
that the rows already meet): edit the schema text through ``PRAGMA writable_schema``.
"""

from __future__ import annotations

from alembic import op


def replace_in_schema(table: str, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) with ``new`` in ``table``'s CREATE TABLE text."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    if old not in sql:
        raise RuntimeError(f"{table} does not declare {old!r}: {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
        (sql.replace(old, new, 1), table),
    )
    # A new schema version makes every connection re-read the schema.
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
