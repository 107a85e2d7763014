"""the review stream: reviews of answers, and review rewards in the ledger

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00

A review is a row per answer and round, waiting for a reviewer, leased to one by a token, or
done with a verdict and the reviewer's correction; a review of an answer on a gold item scores
its reviewer. A ledger entry may be a review's reward (``review_id``); the ledger's "cause"
CHECK gains that kind.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.migrations.sqlite_schema import replace_in_schema

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CAUSE = "(kind = 'payout' AND payout_batch_id IS NOT NULL AND amount_minor < 0)"
REVIEW_CAUSE = "(kind = 'review' AND review_id IS NOT NULL AND amount_minor >= 0)"
CAUSE = (
    "(kind = 'reward' AND answer_id IS NOT NULL AND amount_minor >= 0)"
    " OR (kind = 'bonus' AND taskset_id IS NOT NULL AND amount_minor > 0)"
    " OR (kind IN ('reversal', 'restore') AND reverses_id IS NOT NULL"
    " AND adjustment_id IS NOT NULL)"
    f" OR {OLD_CAUSE}"
)
CHECK = "ck_ledger_entries_cause"
FK = "fk_ledger_entries_review_id_reviews"
SQLITE_FK = f"CONSTRAINT {FK} FOREIGN KEY(review_id) REFERENCES reviews (id) ON DELETE RESTRICT"
NOT_GOLD = "NOT is_gold"
WAITING = "verdict IS NULL"


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taskset_id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column("token", sa.String(24), nullable=True),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.Enum("correct", "wrong", native_enum=False, length=16)),
        sa.Column("corrected_label", sa.String(64), nullable=True),
        sa.Column("corrected_text", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "verdict IS NULL OR worker_id IS NOT NULL", name=op.f("ck_reviews_reviewer")
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answers.id"],
            name=op.f("fk_reviews_answer_id_answers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["taskset_id"],
            ["tasksets.id"],
            name=op.f("fk_reviews_taskset_id_tasksets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_reviews_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("answer_id", "worker_id", name=op.f("uq_reviews_answer_id")),
        sa.UniqueConstraint("token", name=op.f("uq_reviews_token")),
    )
    op.create_index(
        "uq_reviews_round",
        "reviews",
        ["answer_id", "round"],
        unique=True,
        sqlite_where=sa.text(NOT_GOLD),
        postgresql_where=sa.text(NOT_GOLD),
    )
    op.create_index(
        "ix_reviews_waiting",
        "reviews",
        ["taskset_id", "id"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )
    op.create_index("ix_reviews_reviewer", "reviews", ["worker_id", "taskset_id", "verdict"])
    # ADD COLUMN on both databases: on SQLite a batch copy of the ledger would drop the old
    # table, which the payout lines and totals point at.
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("ledger_entries", sa.Column("review_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f(FK), "ledger_entries", "reviews", ["review_id"], ["id"], ondelete="RESTRICT"
        )
        _replace_cause(f"{CAUSE} OR {REVIEW_CAUSE}")
    else:
        op.execute("ALTER TABLE ledger_entries ADD COLUMN review_id INTEGER")
        # The foreign key as a table constraint, where its name and ON DELETE are read back.
        replace_in_schema(
            "ledger_entries",
            f"CONSTRAINT {CHECK} CHECK ({CAUSE})",
            f"{SQLITE_FK}, CONSTRAINT {CHECK} CHECK ({CAUSE} OR {REVIEW_CAUSE})",
        )
    op.create_index("uq_ledger_review", "ledger_entries", ["review_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_ledger_review", table_name="ledger_entries")
    if op.get_bind().dialect.name == "postgresql":
        _replace_cause(CAUSE)
        op.drop_constraint(op.f(FK), "ledger_entries", type_="foreignkey")
    else:
        replace_in_schema(
            "ledger_entries",
            f"{SQLITE_FK}, CONSTRAINT {CHECK} CHECK ({CAUSE} OR {REVIEW_CAUSE})",
            f"CONSTRAINT {CHECK} CHECK ({CAUSE})",
        )
    op.execute("ALTER TABLE ledger_entries DROP COLUMN review_id")
    op.drop_index("ix_reviews_reviewer", table_name="reviews")
    op.drop_index("ix_reviews_waiting", table_name="reviews")
    op.drop_index("uq_reviews_round", table_name="reviews")
    op.drop_table("reviews")


def _replace_cause(cause: str) -> None:
    """PostgreSQL: the ledger's "cause" CHECK dropped and made again (SQLite, where no ALTER
    changes a CHECK and every row meets the new one, gets it by editing the schema text)."""
    op.drop_constraint(op.f(CHECK), "ledger_entries", type_="check")
    op.create_check_constraint(op.f(CHECK), "ledger_entries", cause)
