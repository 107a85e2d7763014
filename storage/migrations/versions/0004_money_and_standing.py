"""money and standing (pending and available earnings, bonuses, payouts, daily counters, privacy)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:50:00

Ledger entries get a date from which they are available (the set's hold period), pointers to
their cause (the entry they reverse, the suspension or reinstatement behind it, the payout
batch) and a note; payout batches and their lines; running ledger totals per worker and
currency; tallies of accepted answers per worker, scope (a set, or 0 for all sets) and period
(day, week, all time) with the rank buckets that count ranked workers per number of answers;
the name a worker may show on leaderboards; the app's own secrets (the pseudonym key).

Existing rows are counted into the new counters here, so CONSISTENCY_CHECKS hold right after.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIN_CONTROL_ANSWERS = 3  # tasksets.standing.MIN_CONTROL_ANSWERS when this revision was written
CAUSE = (
    "(kind = 'reward' AND answer_id IS NOT NULL AND amount_minor >= 0)"
    " OR (kind = 'bonus' AND taskset_id IS NOT NULL AND amount_minor > 0)"
    " OR (kind IN ('reversal', 'restore') AND reverses_id IS NOT NULL"
    " AND adjustment_id IS NOT NULL)"
    " OR (kind = 'payout' AND payout_batch_id IS NOT NULL AND amount_minor < 0)"
)


def upgrade() -> None:
    op.add_column("workers", sa.Column("public_name", sa.String(length=64), nullable=True))
    op.add_column(
        "tasksets", sa.Column("hold_hours", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("tasksets", sa.Column("bonus", sa.JSON(), nullable=True))

    op.create_table(
        "ledger_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=False),
        sa.Column("taskset_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["taskset_id"],
            ["tasksets.id"],
            name=op.f("fk_ledger_adjustments_taskset_id_tasksets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_ledger_adjustments_worker_id_workers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_adjustments")),
    )
    op.create_index(
        "ix_ledger_adjustments_worker", "ledger_adjustments", ["worker_id", "taskset_id"]
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("min_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
    )
    op.create_table(
        "payout_lines",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payout_lines_amount")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payout_lines_batch_id_payout_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_payout_lines_worker_id_workers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("batch_id", "worker_id", name=op.f("pk_payout_lines")),
    )
    op.create_table(
        "ledger_totals",
        sa.Column("worker_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_ledger_totals_worker_id_workers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("worker_id", "currency", name=op.f("pk_ledger_totals")),
    )
    op.create_table(
        "tallies",
        sa.Column("worker_id", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("period", sa.String(length=1), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("gold_answers", sa.Integer(), nullable=False),
        sa.Column("gold_correct", sa.Integer(), nullable=False),
        sa.Column("accuracy_ppm", sa.Integer(), nullable=False),
        sa.Column("min_control", sa.Integer(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_tallies_worker_id_workers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("worker_id", "scope", "period", "start", name=op.f("pk_tallies")),
    )
    op.create_index(
        "ix_tallies_rank",
        "tallies",
        [
            "scope",
            "period",
            "start",
            sa.text("answers DESC"),
            sa.text("accuracy_ppm DESC"),
            "worker_id",
        ],
        sqlite_where=sa.text("hidden = 0 AND gold_answers >= min_control"),
        postgresql_where=sa.text("NOT hidden AND gold_answers >= min_control"),
    )
    op.create_table(
        "rank_buckets",
        sa.Column("scope", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("period", sa.String(length=1), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("answers", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope", "period", "start", "answers", name=op.f("pk_rank_buckets")
        ),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )

    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reverses_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("adjustment_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("payout_batch_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    op.execute("UPDATE ledger_entries SET available_at = created_at")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.alter_column("available_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_foreign_key(
            op.f("fk_ledger_entries_reverses_id_ledger_entries"),
            "ledger_entries",
            ["reverses_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_foreign_key(
            op.f("fk_ledger_entries_adjustment_id_ledger_adjustments"),
            "ledger_adjustments",
            ["adjustment_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_foreign_key(
            op.f("fk_ledger_entries_payout_batch_id_payout_batches"),
            "payout_batches",
            ["payout_batch_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_check_constraint(op.f("ck_ledger_entries_cause"), CAUSE)
        batch.drop_index("ix_ledger_worker")
        batch.create_index("ix_ledger_worker", ["worker_id", "id"])
        batch.create_index(
            "ix_ledger_pending", ["worker_id", "currency", "available_at", "amount_minor"]
        )
    for name, columns, where, unique in (
        ("uq_ledger_reverses", ["reverses_id"], "reverses_id IS NOT NULL", True),
        ("ix_ledger_adjustment", ["adjustment_id"], "adjustment_id IS NOT NULL", False),
        ("uq_ledger_bonus", ["taskset_id", "worker_id"], "kind = 'bonus'", True),
        ("uq_ledger_payout", ["payout_batch_id", "worker_id"], "payout_batch_id IS NOT NULL", True),
    ):
        op.create_index(
            name,
            "ledger_entries",
            columns,
            unique=unique,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    count_existing_rows()


def count_existing_rows() -> None:
    """Ledger totals, tallies and rank buckets of what the database holds already."""
    op.execute(
        "INSERT INTO ledger_totals (worker_id, currency, total_minor, paid_minor) "
        "SELECT worker_id, currency, sum(amount_minor), 0 FROM ledger_entries "
        "GROUP BY worker_id, currency"
    )
    if op.get_bind().dialect.name == "sqlite":
        day, week = "date(a.created_at)", "date(a.created_at, '-6 days', 'weekday 1')"
        epoch = "'1970-01-01'"
    else:
        utc = "(a.created_at AT TIME ZONE 'UTC')"
        day, week = f"CAST({utc} AS DATE)", f"CAST(date_trunc('week', {utc}) AS DATE)"
        epoch = "DATE '1970-01-01'"
    counts = (
        "count(*) AS answers, "
        "sum(CASE WHEN i.is_gold THEN 1 ELSE 0 END) AS gold_answers, "
        "sum(CASE WHEN i.is_gold AND a.label = i.gold_label THEN 1 ELSE 0 END) AS gold_correct"
    )
    branches = []
    for scope in ("a.taskset_id", "0"):
        for period, start in (("d", day), ("w", week), ("a", epoch)):
            # Constants stay out of GROUP BY, where SQLite would read 0 as a column number.
            groups = ", ".join(g for g in ("a.worker_id", scope, start) if g not in ("0", epoch))
            branches.append(
                f"SELECT a.worker_id, {scope} AS scope, '{period}' AS period, {start} AS start, "
                f"{counts} FROM answers a JOIN items i ON i.id = a.item_id "
                f"WHERE a.kind = 'label' GROUP BY {groups}"
            )
    gold_sets = "SELECT DISTINCT taskset_id FROM items WHERE is_gold"
    op.execute(
        "INSERT INTO tallies (worker_id, scope, period, start, answers, gold_answers, "
        "gold_correct, accuracy_ppm, min_control, hidden) "
        "SELECT t.worker_id, t.scope, t.period, t.start, t.answers, t.gold_answers, "
        "t.gold_correct, (t.gold_correct + 4) * 1000000 / (t.gold_answers + 5), "
        f"CASE WHEN t.scope = 0 OR t.scope IN ({gold_sets}) THEN {MIN_CONTROL_ANSWERS} "
        "ELSE 0 END, "
        "CASE WHEN EXISTS (SELECT 1 FROM memberships m WHERE m.worker_id = t.worker_id "
        "AND m.taskset_id = t.scope AND m.status = 'suspended') THEN true ELSE false END "
        f"FROM ({' UNION ALL '.join(branches)}) t"
    )
    op.execute(
        "INSERT INTO rank_buckets (scope, period, start, answers, workers) "
        "SELECT scope, period, start, answers, count(*) FROM tallies "
        "WHERE NOT hidden AND gold_answers >= min_control "
        "GROUP BY scope, period, start, answers"
    )


def downgrade() -> None:
    for name in (
        "uq_ledger_payout",
        "uq_ledger_bonus",
        "ix_ledger_adjustment",
        "uq_ledger_reverses",
    ):
        op.drop_index(name, table_name="ledger_entries")
    # Entries other than rewards have no place in the earlier schema.
    op.execute("DELETE FROM ledger_entries WHERE kind <> 'reward'")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_index("ix_ledger_pending")
        batch.drop_index("ix_ledger_worker")
        batch.create_index("ix_ledger_worker", ["worker_id", "currency"])
        batch.drop_constraint(op.f("ck_ledger_entries_cause"), type_="check")
        batch.drop_constraint(
            op.f("fk_ledger_entries_payout_batch_id_payout_batches"), type_="foreignkey"
        )
        batch.drop_constraint(
            op.f("fk_ledger_entries_adjustment_id_ledger_adjustments"), type_="foreignkey"
        )
        batch.drop_constraint(
            op.f("fk_ledger_entries_reverses_id_ledger_entries"), type_="foreignkey"
        )
        batch.drop_column("note")
        batch.drop_column("payout_batch_id")
        batch.drop_column("adjustment_id")
        batch.drop_column("reverses_id")
        batch.drop_column("available_at")
    op.drop_table("app_secrets")
    op.drop_table("rank_buckets")
    op.drop_index("ix_tallies_rank", table_name="tallies")
    op.drop_table("tallies")
    op.drop_table("ledger_totals")
    op.drop_table("payout_lines")
    op.drop_table("payout_batches")
    op.drop_index("ix_ledger_adjustments_worker", table_name="ledger_adjustments")
    op.drop_table("ledger_adjustments")
    with op.batch_alter_table("tasksets") as batch:
        batch.drop_column("bonus")
        batch.drop_column("hold_hours")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("public_name")
