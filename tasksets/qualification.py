"""The qualification rule: when a new worker's training answers let them in, or keep them out.

A set with ``"qualification": {"items": 5, "min_accuracy": 0.8}`` first serves each new worker
that many training gold items; this module decides, from the worker's gold counts alone, whether
they passed, failed, or must answer more. Pure: the storage layer applies the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Qualification(BaseModel):
    """Training gold items a new worker answers first, and the accuracy that lets them in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: int = Field(ge=1)
    min_accuracy: float = Field(ge=0, le=1)


@dataclass(frozen=True, slots=True)
class QualificationVerdict:
    passed: bool
    reason: str  # in words the worker reads


def qualification_verdict(
    qualification: Qualification, gold_answers: int, gold_correct: int, *, out_of_items: bool
) -> QualificationVerdict | None:
    """Pass or fail once the worker answered ``items`` training questions; None while they
    have more to answer. ``out_of_items``: the set has no more gold to train on, so judge on
    what was seen (a worker who saw none passes)."""
    if gold_answers < qualification.items and not out_of_items:
        return None
    accuracy = gold_correct / gold_answers if gold_answers else 1.0
    if accuracy >= qualification.min_accuracy:
        return QualificationVerdict(True, f"passed the qualification with {accuracy:.0%}")
    return QualificationVerdict(
        False,
        f"{gold_correct} of {gold_answers} training questions right, "
        f"{qualification.min_accuracy:.0%} needed",
    )
