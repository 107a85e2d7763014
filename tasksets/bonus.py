"""The accuracy bonus of a task set: who earns it and how much. Pure rules over plain numbers.

A set may offer ``"bonus": {"min_gold_accuracy": 0.9, "min_answers": 50, "percent": 20}``: a
worker still in good standing when the set closes (or when ``labelbot bonuses NAME`` runs), with
at least ``min_answers`` accepted answers and a smoothed gold accuracy of at least
``min_gold_accuracy``, gets ``percent`` % of what their accepted answers earned there, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasksets.money import refuse_float
from tasksets.quality import smoothed_accuracy


class BonusRule(BaseModel):
    """``"bonus"`` in the task-set file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_gold_accuracy: float = Field(0.9, ge=0, le=1)
    min_answers: int = Field(50, ge=0)
    # A share of the rewards earned in the set: 20 means 20 %. Written exactly (a decimal).
    percent: Decimal = Field(gt=0, le=1000)

    @field_validator("percent", mode="before")
    @classmethod
    def _percent_is_exact(cls, value: object) -> object:
        return refuse_float(
            value, "write the percent as a whole number or a decimal string, e.g. 20"
        )

    @field_validator("percent")
    @classmethod
    def _at_most_two_decimals(cls, value: Decimal) -> Decimal:
        if value != value.quantize(Decimal("0.01")):
            raise ValueError("a percent has at most two decimals")
        return value


@dataclass(frozen=True, slots=True)
class BonusAward:
    amount_minor: int
    # Why, in words the worker reads under /earnings.
    reason: str


def bonus_award(
    rule: BonusRule,
    *,
    answers: int,
    gold_answers: int,
    gold_correct: int,
    earned_minor: int,
) -> BonusAward | None:
    """The bonus a worker earns in a set, or None when they do not qualify (or it rounds to 0).

    ``answers`` are the worker's accepted (labeled) answers in the set, ``earned_minor`` what
    they earned for them; the bonus is rounded down to a whole minor unit, never up.
    """
    accuracy = smoothed_accuracy(gold_correct, gold_answers)
    if answers < rule.min_answers or accuracy < rule.min_gold_accuracy:
        return None
    amount = int(
        (Decimal(earned_minor) * rule.percent / 100).to_integral_value(rounding=ROUND_FLOOR)
    )
    if amount <= 0:
        return None
    percent = f"{rule.percent.normalize():f}"
    return BonusAward(
        amount,
        f"{percent}% for {accuracy:.0%} accuracy on {gold_answers} control questions "
        f"over {answers} answers",
    )
