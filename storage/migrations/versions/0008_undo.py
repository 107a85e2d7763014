"""answers.withdrawn_at: an answer its worker undid

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00

An undone answer keeps its row (its reward's ledger entries point to it, and the ledger is never
changed): the row is marked withdrawn, every read of answers leaves it out, and the worker's
next answer to the reopened item writes over it (same row, same id).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both databases (see 0006: no batch copy of a parent table).
    op.execute("ALTER TABLE answers DROP COLUMN withdrawn_at")
