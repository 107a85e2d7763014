"""tasksets.layout: "chat" (a message per item) or "card" (one message edited item to item)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tasksets",
        sa.Column("layout", sa.String(8), nullable=False, server_default="chat"),
    )


def downgrade() -> None:
    with op.batch_alter_table("tasksets") as batch:
        batch.drop_column("layout")
