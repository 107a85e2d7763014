"""items.set_aside_reason: an item Telegram refuses to show is kept out of the pool

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PICK_COLUMNS: list[str | sa.ColumnElement[object]] = [
    "taskset_id",
    "is_gold",
    "open",
    sa.literal_column("answer_count DESC"),
    "position",
]


def upgrade() -> None:
    op.add_column("items", sa.Column("set_aside_reason", sa.Text(), nullable=True))
    # The pick index becomes partial, with the pick's own predicate, so the planner keeps using it.
    not_set_aside = sa.text("set_aside_reason IS NULL")
    op.drop_index("ix_items_pick", table_name="items")
    op.create_index(
        "ix_items_pick",
        "items",
        PICK_COLUMNS,
        postgresql_where=not_set_aside,
        sqlite_where=not_set_aside,
    )


def downgrade() -> None:
    op.drop_index("ix_items_pick", table_name="items")
    op.create_index("ix_items_pick", "items", PICK_COLUMNS)
    with op.batch_alter_table("items") as batch:
        batch.drop_column("set_aside_reason")
