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

from decimal import Decimal

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
