"""coordinators run task sets from the chat (drafts, disputes, broadcasts)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taskset_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("progress_message_id", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runner", sa.String(length=32), nullable=True),
        sa.Column("runner_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["taskset_id"],
            ["tasksets.id"],
            name=op.f("fk_broadcasts_taskset_id_tasksets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "blocked",
                "failed",
                "unknown",
                name="deliverystate",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_broadcast_recipients_broadcast_id_broadcasts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_broadcast_recipients_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "worker_id", name=op.f("pk_broadcast_recipients")),
    )
    op.create_index(
        "ix_broadcast_recipients_state",
        "broadcast_recipients",
        ["broadcast_id", "state", "worker_id"],
    )
    op.add_column(
        "disputes",
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "accepted",
                "rejected",
                name="disputestatus",
                native_enum=False,
                length=16,
            ),
            server_default="open",
            nullable=False,
        ),
    )
    op.add_column("disputes", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("disputes", sa.Column("decided_by", sa.BigInteger(), nullable=True))
    op.add_column("tasksets", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "workers", sa.Column("notify", sa.Boolean(), server_default=sa.true(), nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("notify")
    with op.batch_alter_table("tasksets") as batch:
        batch.drop_column("completed_at")
    with op.batch_alter_table("disputes") as batch:
        batch.drop_column("decided_by")
        batch.drop_column("decided_at")
        batch.drop_column("status")
    op.drop_index("ix_broadcast_recipients_state", table_name="broadcast_recipients")
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcasts")
