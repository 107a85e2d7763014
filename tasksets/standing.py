"""A worker's public standing: leaderboard periods, who is ranked, levels and pseudonyms.

Pure rules over plain numbers and dates, shared by the answer's transaction (which keeps the
counters) and the reads behind /me and /leaderboard.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tasksets.quality import PRIOR_CORRECT, PRIOR_WRONG

# The start of the "all time" period, so that every period has a start date.
EPOCH = date(1970, 1, 1)
# A worker is ranked once they answered this many control questions in the period and scope,
# so that the accuracy beside their name means something. Sets without gold rank everyone.
MIN_CONTROL_ANSWERS = 3
# Smoothed accuracy as an integer (parts per million), so it can sit in an index.
PPM = 1_000_000
CHART_DAYS = 14


class Period(enum.StrEnum):
    """Leaderboard periods, in UTC: today, the week from Monday, and all time."""

    DAY = "d"
    WEEK = "w"
    ALL = "a"


def period_start(period: Period, moment: datetime) -> date:
    """The first day of the period that ``moment`` falls in (UTC)."""
    day = moment.astimezone(UTC).date()
    if period == Period.DAY:
        return day
    if period == Period.WEEK:
        return day - timedelta(days=day.weekday())
    return EPOCH


def min_control(has_gold: bool) -> int:
    """Control answers a worker needs to be ranked in a set (with or without gold items)."""
    return MIN_CONTROL_ANSWERS if has_gold else 0


def accuracy_ppm(gold_correct: int, gold_answers: int) -> int:
    """The smoothed gold accuracy (Beta prior, as ``smoothed_accuracy``) in parts per million,
    rounded down: the same integer the database computes in the answer's transaction."""
    prior = int(PRIOR_CORRECT), int(PRIOR_CORRECT + PRIOR_WRONG)
    return (gold_correct + prior[0]) * PPM // (gold_answers + prior[1])


def pseudonym(key: bytes, worker_id: int) -> str:
    """A stable public name that cannot be traced back to the Telegram id without ``key``
    (an HMAC-SHA256 of the id; without the key, trying every id gets nowhere)."""
    digest = hmac.new(key, str(worker_id).encode(), hashlib.sha256).hexdigest()
    return f"Worker {digest[:6].upper()}"


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    # What the next level asks for, in words; None at the top.
    next_step: str | None


# (name, accepted answers, smoothed accuracy at least), lowest first.
LEVELS: tuple[tuple[str, int, float], ...] = (
    ("Newcomer", 0, 0.0),
    ("Regular", 20, 0.0),
    ("Skilled", 200, 0.8),
    ("Expert", 1000, 0.9),
    ("Master", 5000, 0.95),
)


def level(answers: int, gold_correct: int, gold_answers: int) -> Level:
    """A worker's level from their accepted answers and smoothed gold accuracy (all sets)."""
    accuracy = accuracy_ppm(gold_correct, gold_answers) / PPM
    reached = 0
    for index, (_name, needed, min_accuracy) in enumerate(LEVELS):
        if answers >= needed and accuracy >= min_accuracy:
            reached = index
    name = LEVELS[reached][0]
    if reached + 1 == len(LEVELS):
        return Level(name, None)
    next_name, needed, min_accuracy = LEVELS[reached + 1]
    step = f"{next_name}: {needed:,} answers"
    if min_accuracy:
        step += f" at {min_accuracy:.0%} accuracy"
    return Level(name, step)
