"""Counters kept by the answer's own writes, so the reads behind /me and /leaderboard cost the
same at 10 answers and at 10 million:

* ``tallies``: a worker's accepted answers and gold score per scope (the set, and 0 for all
  sets) and period (the UTC day, the week from Monday, all time): six rows per answer;
* ``rank_buckets``: how many ranked workers have exactly n answers in a scope and period, moved
  by one from n - 1 to n as a ranked worker's tally grows; a rank is a sum over the buckets
  above, not a count of the workers ahead;
* ``ledger_totals``: a worker's ledger summed per currency.

Each is described once, as an upsert (``INSERT ... ON CONFLICT DO UPDATE``, the same SQL on
SQLite and PostgreSQL). SQLite runs them one by one after the answer; PostgreSQL runs them in
the answer's merged statement (``answer_writes_statement``), where the buckets are moved from
the tallies' RETURNING rows instead of re-reading the table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Insert,
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    false,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert

from storage.models import (
    COUNTED_KINDS_SQL,
    LedgerTotal,
    Membership,
    MembershipStatus,
    RankBucket,
    Tally,
)
from storage.statements.build import typed_bind
from tasksets.quality import PRIOR_CORRECT, PRIOR_WRONG
from tasksets.standing import EPOCH, PPM, Period

ALL_SETS = 0
TALLY_KEY = ("worker_id", "scope", "period", "start")
BUCKET_KEY = ("scope", "period", "start", "answers")


def ppm_expression(correct: Any, answers: Any) -> Any:
    """``tasksets.standing.accuracy_ppm`` in SQL (integer division on both databases)."""
    prior_correct, prior_total = int(PRIOR_CORRECT), int(PRIOR_CORRECT + PRIOR_WRONG)
    # BIGINT: a million times a long history overflows PostgreSQL's INTEGER.
    return (correct + prior_correct) * literal(PPM, BigInteger) // (answers + prior_total)


def period_starts() -> list[tuple[Period, Any]]:
    """Each period with the start the answer's tallies use: bound per answer, EPOCH for all."""
    return [
        (Period.DAY, bindparam("day", type_=Date)),
        (Period.WEEK, bindparam("week", type_=Date)),
        (Period.ALL, literal(EPOCH, Date)),
    ]


def tally_upsert_statement() -> Insert:
    """Count a labeled answer (``added`` is 1) in the worker's six tallies, creating those the
    day, week or set has not seen yet; returns the six rows as they are now."""
    added = bindparam("added", type_=Integer)
    gold = bindparam("gold", type_=Integer)
    correct = bindparam("correct", type_=Integer)
    # A worker suspended in the set is off its boards (a late answer may still come in).
    suspended = exists().where(
        Membership.worker_id == bindparam("worker_id"),
        Membership.taskset_id == bindparam("taskset_id"),
        Membership.status == MembershipStatus.SUSPENDED,
    )
    branches = []
    for scope, needed, hidden in (
        (
            typed_bind("taskset_id", Tally.scope),
            typed_bind("min_set", Tally.min_control),
            suspended,
        ),
        (literal(ALL_SETS, Integer), typed_bind("min_all", Tally.min_control), false()),
    ):
        for period, start in period_starts():
            branches.append(
                select(
                    typed_bind("worker_id", Tally.worker_id).label("worker_id"),
                    scope.label("scope"),
                    literal(period.value, Tally.period.type).label("period"),
                    start.label("start"),
                    literal(1, Integer).label("answers"),
                    gold.label("gold_answers"),
                    correct.label("gold_correct"),
                    ppm_expression(correct, gold).label("accuracy_ppm"),
                    needed.label("min_control"),
                    hidden.label("hidden"),
                ).where(added == 1)
            )
    rows = union_all(*branches).subquery("counted")
    columns = [column.name for column in rows.c]
    # WHERE true: SQLite would read ON CONFLICT as a join constraint of the SELECT otherwise.
    statement = upsert(Tally).from_select(columns, select(*rows.c).where(true()))
    return statement.on_conflict_do_update(
        index_elements=list(TALLY_KEY),
        set_={
            "answers": Tally.answers + statement.excluded.answers,
            "gold_answers": Tally.gold_answers + statement.excluded.gold_answers,
            "gold_correct": Tally.gold_correct + statement.excluded.gold_correct,
            "accuracy_ppm": ppm_expression(
                Tally.gold_correct + statement.excluded.gold_correct,
                Tally.gold_answers + statement.excluded.gold_answers,
            ),
        },
    ).returning(*Tally.__table__.c)


def bucket_moves_statement(tallies: Any) -> Insert:
    """Move each ranked worker of the six ``tallies`` rows (as they are after the answer) from
    the bucket of n - 1 answers to that of n. A row counts when it is visible and has enough
    control answers; before the answer it had ``gold`` fewer and did not exist at n = 1."""
    gold = bindparam("gold", type_=Integer)
    visible = ~tallies.c.hidden
    ranked_now = and_(visible, tallies.c.gold_answers >= tallies.c.min_control)
    ranked_before = and_(
        visible, tallies.c.answers > 1, tallies.c.gold_answers - gold >= tallies.c.min_control
    )
    key = (tallies.c.scope, tallies.c.period, tallies.c.start)
    moves = union_all(
        select(*key, tallies.c.answers, literal(1, Integer).label("workers")).where(ranked_now),
        select(*key, (tallies.c.answers - 1).label("answers"), literal(-1, Integer)).where(
            ranked_before
        ),
    ).subquery("moves")
    return add_to_buckets(select(*moves.c).where(true()))


def add_to_buckets(moves: Select[*tuple[Any, ...]]) -> Insert:
    """Add each row's ``workers`` (+1 or -1) to the rank bucket of its scope, period, start and
    number of answers, creating the buckets not there yet."""
    statement = upsert(RankBucket).from_select([*BUCKET_KEY, "workers"], moves)
    return statement.on_conflict_do_update(
        index_elements=list(BUCKET_KEY),
        set_={"workers": RankBucket.workers + statement.excluded.workers},
    )


def answer_tally_rows() -> Any:
    """The worker's six tallies an answer counts in: its set and all sets, its UTC day, its
    week and all time (parameters ``worker_id``, ``taskset_id``, ``day``, ``week``)."""
    return and_(
        Tally.worker_id == bindparam("worker_id"),
        Tally.scope.in_([typed_bind("taskset_id", Tally.scope), literal(ALL_SETS, Integer)]),
        or_(
            *(
                and_(Tally.period == period.value, Tally.start == start)
                for period, start in period_starts()
            )
        ),
    )


def answer_tallies() -> Any:
    """The worker's six tallies of this answer, read back from the table (SQLite, where the
    upsert has run by then)."""
    return select(Tally).where(answer_tally_rows()).subquery("tallies")


def totals_upsert_statement(source: Any) -> Insert:
    """Add each (worker_id, currency, amount_minor, paid_minor) row of ``source`` to the
    worker's running ledger totals."""
    statement = upsert(LedgerTotal).from_select(
        ["worker_id", "currency", "total_minor", "paid_minor"],
        select(
            source.c.worker_id, source.c.currency, source.c.amount_minor, source.c.paid_minor
        ).where(true()),
    )
    return statement.on_conflict_do_update(
        index_elements=["worker_id", "currency"],
        set_={
            "total_minor": LedgerTotal.total_minor + statement.excluded.total_minor,
            "paid_minor": LedgerTotal.paid_minor + statement.excluded.paid_minor,
        },
    )


def credited_total() -> Any:
    """The answer's reward as a ledger-totals row, when it is credited (``credit``)."""
    return (
        select(
            typed_bind("worker_id", LedgerTotal.worker_id).label("worker_id"),
            typed_bind("currency", LedgerTotal.currency).label("currency"),
            typed_bind("amount_minor", LedgerTotal.total_minor).label("amount_minor"),
            literal(0, LedgerTotal.paid_minor.type).label("paid_minor"),
        )
        .where(bindparam("credit", type_=Boolean))
        .subquery("credited")
    )


UPSERT_TALLIES = tally_upsert_statement()
MOVE_BUCKETS = bucket_moves_statement(answer_tallies())
ADD_REWARD_TO_TOTALS = totals_upsert_statement(credited_total())


# Each query counts rows where a counter differs from what the rows say (all should be 0).
def regrade_statement() -> Update:
    """Move ``delta`` of a worker's correct gold answers in one tally (a corrected gold label
    turned their answer right, +1, or wrong, -1), with the accuracy that follows."""
    corrected = Tally.gold_correct + bindparam("delta", type_=Integer)
    return (
        update(Tally)
        .where(
            Tally.worker_id == bindparam("tally_worker"),
            Tally.scope == bindparam("tally_scope"),
            Tally.period == bindparam("tally_period"),
            Tally.start == bindparam("tally_start", type_=Date),
        )
        .values(gold_correct=corrected, accuracy_ppm=ppm_expression(corrected, Tally.gold_answers))
    )


REGRADE_TALLY = regrade_statement()
# The same move in the worker's standing in the set.
MOVE_GOLD_CORRECT = (
    update(Membership)
    .where(Membership.worker_id == bindparam("mover"), Membership.taskset_id == bindparam("in_set"))
    .values(gold_correct=Membership.gold_correct + bindparam("delta", type_=Integer))
)

TALLY_CHECKS = {
    "tallies of a set (all time) that differ from the worker's counted answers there": (
        "SELECT count(*) FROM (SELECT a.worker_id, a.taskset_id AS scope, count(*) AS n, "
        "sum(CASE WHEN i.is_gold THEN 1 ELSE 0 END) AS g, "
        "sum(CASE WHEN i.is_gold AND a.label = i.gold_label THEN 1 ELSE 0 END) AS c, "
        # A typed gold answer is judged by its word error rate, which SQL does not recount.
        "min(CASE WHEN i.is_gold AND a.kind = 'text' THEN 0 ELSE 1 END) AS recountable "
        f"FROM answers a JOIN items i ON i.id = a.item_id WHERE a.kind IN {COUNTED_KINDS_SQL} "
        "AND a.withdrawn_at IS NULL "
        "GROUP BY a.worker_id, a.taskset_id) c FULL OUTER JOIN "
        "(SELECT worker_id, scope, answers, gold_answers, gold_correct FROM tallies "
        "WHERE period = 'a' AND scope <> 0) t ON t.worker_id = c.worker_id AND t.scope = c.scope "
        "WHERE coalesce(c.n, 0) <> coalesce(t.answers, 0) OR coalesce(c.g, 0) <> "
        "coalesce(t.gold_answers, 0) OR (coalesce(c.recountable, 1) = 1 AND "
        "coalesce(c.c, 0) <> coalesce(t.gold_correct, 0))"
    ),
    "tallies of all sets that differ from the sum of the sets": (
        "SELECT count(*) FROM (SELECT worker_id, sum(answers) AS n, sum(gold_answers) AS g, "
        "sum(gold_correct) AS c FROM tallies WHERE period = 'a' AND scope <> 0 "
        "GROUP BY worker_id) s FULL OUTER JOIN (SELECT * FROM tallies "
        "WHERE period = 'a' AND scope = 0) t ON t.worker_id = s.worker_id "
        "WHERE coalesce(s.n, 0) <> coalesce(t.answers, 0) "
        "OR coalesce(s.g, 0) <> coalesce(t.gold_answers, 0) "
        "OR coalesce(s.c, 0) <> coalesce(t.gold_correct, 0)"
    ),
    "tallies whose days or weeks do not add up to all time": (
        "SELECT count(*) FROM tallies t, (SELECT 'd' AS period UNION ALL SELECT 'w') p "
        "WHERE t.period = 'a' AND (t.answers, t.gold_answers, t.gold_correct) <> ("
        "SELECT coalesce(sum(d.answers), 0), coalesce(sum(d.gold_answers), 0), "
        "coalesce(sum(d.gold_correct), 0) FROM tallies d WHERE d.worker_id = t.worker_id "
        "AND d.scope = t.scope AND d.period = p.period)"
    ),
    "tallies whose accuracy differs from their gold score": (
        "SELECT count(*) FROM tallies WHERE accuracy_ppm <> "
        "CAST(gold_correct + 4 AS BIGINT) * 1000000 / (gold_answers + 5)"
    ),
    "rank buckets that differ from the ranked tallies": (
        "SELECT count(*) FROM (SELECT scope, period, start, answers, count(*) AS n "
        "FROM tallies WHERE NOT hidden AND gold_answers >= min_control "
        "GROUP BY scope, period, start, answers) c FULL OUTER JOIN rank_buckets b "
        "ON b.scope = c.scope AND b.period = c.period AND b.start = c.start "
        "AND b.answers = c.answers WHERE coalesce(c.n, 0) <> coalesce(b.workers, 0)"
    ),
    "tallies on the boards of a set the worker is suspended in": (
        "SELECT count(*) FROM tallies t JOIN memberships m ON m.worker_id = t.worker_id "
        "AND m.taskset_id = t.scope WHERE m.status = 'suspended' AND NOT t.hidden"
    ),
}
