"""free-text and voice answers, "not sure" reasons, the reviewer level

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00

A set says what its workers answer with (labels, a typed reply, a voice note, or either) and
the limits of a typed or voice answer, how its text answers are aggregated and its review rule.
An answer may carry a text, a voice note (file_id, seconds, bytes), the message that carried it
(so an edit finds it), when it was edited, and why the worker was not sure. A gold answer may
be a whole expected text. A membership says whether the worker reviews for the set.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.migrations.sqlite_schema import replace_in_schema

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLY_GIVEN = "reply_message_id IS NOT NULL"
NEW_COLUMNS = {
    "tasksets": (
        "answer",
        "max_length",
        "min_seconds",
        "max_seconds",
        "gold_max_wer",
        "aggregate",
        "review",
    ),
    "answers": (
        "text",
        "voice_file_id",
        "voice_seconds",
        "voice_bytes",
        "reply_message_id",
        "edited_at",
        "reason",
    ),
    "memberships": ("reviewer",),
}


def upgrade() -> None:
    taskset_columns: tuple[sa.Column[Any], ...] = (
        sa.Column("answer", sa.String(16), nullable=False, server_default="labels"),
        sa.Column("max_length", sa.Integer(), nullable=False, server_default="1000"),
        sa.Column("min_seconds", sa.Float(), nullable=True),
        sa.Column("max_seconds", sa.Float(), nullable=True),
        sa.Column("gold_max_wer", sa.Float(), nullable=False, server_default="0.1"),
        sa.Column("aggregate", sa.String(8), nullable=False, server_default="vote"),
        sa.Column("review", sa.JSON(), nullable=True),
    )
    answer_columns: tuple[sa.Column[Any], ...] = (
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("voice_file_id", sa.String(256), nullable=True),
        sa.Column("voice_seconds", sa.Integer(), nullable=True),
        sa.Column("voice_bytes", sa.BigInteger(), nullable=True),
        sa.Column("reply_message_id", sa.BigInteger(), nullable=True),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    for column in taskset_columns:
        op.add_column("tasksets", column)
    for column in answer_columns:
        op.add_column("answers", column)
    op.create_index(
        "ix_answers_reply",
        "answers",
        ["worker_id", "reply_message_id"],
        sqlite_where=sa.text(REPLY_GIVEN),
        postgresql_where=sa.text(REPLY_GIVEN),
    )
    op.add_column(
        "memberships",
        sa.Column("reviewer", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # A whole expected text, not only a label value. PostgreSQL changes the type in place (no
    # rewrite); SQLite never enforced the length, and only the declared type name changes.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("items", "gold_label", type_=sa.Text(), existing_type=sa.String(64))
    else:
        replace_in_schema("items", "gold_label VARCHAR(64)", "gold_label TEXT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("items", "gold_label", type_=sa.String(64), existing_type=sa.Text())
    else:
        replace_in_schema("items", "gold_label TEXT", "gold_label VARCHAR(64)")
    op.drop_index("ix_answers_reply", table_name="answers")
    # ALTER TABLE ... DROP COLUMN on both databases: a batch copy of a parent table on SQLite
    # drops the old one, and with foreign keys on that deletes its children (ON DELETE CASCADE).
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
