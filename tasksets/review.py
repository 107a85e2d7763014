"""The review stream's rule: which answers a set sends to reviewers, what a review pays, and who
may review. Pure rules over plain numbers.

A set may ask for ``"review": {"sample": 0.05, "below_confidence": 0.8, "not_sure": true,
"text": 0.2, "reward": "0.01", "min_answers": 50, "min_gold_accuracy": 0.9}``: a random share
``sample`` of its answers, the answers on items whose aggregate confidence stays below
``below_confidence``, every "Not sure" answer (``not_sure``) and a share ``text`` of free-text
and voice answers are reviewed. A worker with at least ``min_answers`` answers in the set and a
smoothed gold accuracy of at least ``min_gold_accuracy`` reviews for it, earning ``reward`` (in
the set's currency) per review.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasksets.money import refuse_float
from tasksets.quality import smoothed_accuracy


class ReviewRule(BaseModel):
    """``"review"`` in the task-set file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample: float = Field(0.0, ge=0, le=1)
    below_confidence: float | None = Field(None, gt=0, le=1)
    not_sure: bool = False
    text: float = Field(0.0, ge=0, le=1)
    # Per review, in the set's currency; its decimals are checked against the currency by the
    # task set, which knows it.
    reward: Decimal = Field(Decimal(0), ge=0)
    min_answers: int = Field(50, ge=0)
    min_gold_accuracy: float = Field(0.9, ge=0, le=1)

    @field_validator("reward", mode="before")
    @classmethod
    def _reward_is_exact(cls, value: object) -> object:
        return refuse_float(value, 'write the reward as a decimal string such as "0.01"')


def is_reviewer(rule: ReviewRule, *, answers: int, gold_answers: int, gold_correct: int) -> bool:
    """Whether a worker with this record in a set reviews for it (and stays a reviewer)."""
    accuracy = smoothed_accuracy(gold_correct, gold_answers)
    return answers >= rule.min_answers and accuracy >= rule.min_gold_accuracy


class Reason(StrEnum):
    """Why an answer is reviewed."""

    SAMPLE = "sample"  # the random share of all answers
    CONFIDENCE = "confidence"  # its item's aggregate confidence stayed below the threshold
    NOT_SURE = "not_sure"
    TEXT = "text"  # the share of typed and voice answers
    GOLD = "gold"  # an answer on a gold item: its verdict is known, it scores the reviewer


# The answer kinds (storage's AnswerKind values) a review may look at: a skip says nothing.
FREE_TEXT_KINDS = frozenset({"text", "voice"})


def review_reason(rule: ReviewRule, kind: str, draw: Callable[[], float]) -> Reason | None:
    """Whether a new answer of ``kind`` goes to review, and why. ``draw`` gives a uniform
    number in [0, 1); it is called only when a share decides, so a set whose rule never
    samples uses no randomness."""
    if kind == "unsure":
        return Reason.NOT_SURE if rule.not_sure else None
    if kind in FREE_TEXT_KINDS:
        return Reason.TEXT if rule.text and draw() < rule.text else None
    if kind == "label":
        return Reason.SAMPLE if rule.sample and draw() < rule.sample else None
    return None


def review_outcome(verdicts: Sequence[bool]) -> bool | None:
    """What the reviews of one answer decide so far (True: the answer stands, False: it is
    wrong), or None when one more review is needed.

    One ✅ settles it. A ❌ counts only when a second reviewer agrees; when the two disagree,
    a third decides. So a single careless reviewer never costs a worker anything."""
    right = sum(verdicts)
    wrong = len(verdicts) - right
    if right and not wrong:
        return True
    if right >= 2:
        return True
    if wrong >= 2:
        return False
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One review of an answer, in the order of the rounds."""

    reviewer: int
    correct: bool
    corrected: str | None  # the right label a ❌ named


def correction(verdicts: Sequence[Verdict]) -> tuple[bool, Verdict | None]:
    """Whether the reviews settled the answer wrong, and if so the ❌ whose right label takes
    its place in aggregation: the last that named one (None when none did)."""
    if review_outcome([verdict.correct for verdict in verdicts]) is not False:
        return False, None
    named = [v for v in verdicts if not v.correct and v.corrected is not None]
    return True, named[-1] if named else None


def agreement(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """The share of pairs of verdicts on the same answer that agree; None without pairs."""
    if not pairs:
        return None
    return sum(first == second for first, second in pairs) / len(pairs)


@dataclass(frozen=True, slots=True)
class ReviewerPath:
    """Where a worker stands against a set's reviewer level."""

    reviewer: bool
    answers_missing: int  # more answers needed
    accuracy: float  # smoothed gold accuracy now
    min_accuracy: float


def reviewer_path(
    rule: ReviewRule, *, reviewer: bool, answers: int, gold_answers: int, gold_correct: int
) -> ReviewerPath:
    return ReviewerPath(
        reviewer=reviewer,
        answers_missing=max(0, rule.min_answers - answers),
        accuracy=smoothed_accuracy(gold_correct, gold_answers),
        min_accuracy=rule.min_gold_accuracy,
    )
