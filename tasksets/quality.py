"""Worker quality maths that runs per tap: smoothed gold accuracy, a cheap item posterior, and the
auto-suspension rules. Pure functions over plain numbers so they are easy to test."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Beta(4, 1) prior on a worker's accuracy: a newcomer counts as 0.8; 1 right of 1 is 0.83, not 1.
PRIOR_CORRECT = 4.0
PRIOR_WRONG = 1.0


def smoothed_accuracy(correct: int, total: int) -> float:
    """Posterior mean of a worker's accuracy on gold questions under the Beta prior."""
    return (correct + PRIOR_CORRECT) / (total + PRIOR_CORRECT + PRIOR_WRONG)


def item_posterior(answers: Sequence[tuple[int, float]], n_labels: int) -> tuple[int, float]:
    """Most likely label of an item and its probability, from (label index, worker accuracy) pairs.

    A one-coin model: a worker of accuracy p gives the true label with probability p and each
    other label with (1 - p) / (K - 1). It needs no EM, so it can run in the answer's transaction.
    """
    if not answers:
        return -1, 0.0
    log_post = [0.0] * n_labels
    for label, accuracy in answers:
        p = min(max(accuracy, 1e-3), 1 - 1e-3)
        miss = math.log((1 - p) / (n_labels - 1))
        hit = math.log(p)
        for k in range(n_labels):
            log_post[k] += hit if k == label else miss
    top = max(log_post)
    weights = [math.exp(v - top) for v in log_post]
    best = max(range(n_labels), key=lambda k: (weights[k], -k))
    return best, weights[best] / sum(weights)


class QualityRules(BaseModel):
    """Auto-suspension thresholds, configurable per task set (``"quality": {...}`` in the file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_gold_accuracy: float = Field(0.6, ge=0, le=1)
    min_gold_answers: int = Field(5, ge=1)
    min_median_seconds: float = Field(1.0, ge=0)
    min_answers_for_speed: int = Field(10, ge=1)
    dominant_label_share: float = Field(0.9, gt=0, le=1)
    dominant_window: int = Field(20, ge=5)
    # The crowd "says otherwise" when it gives that label to at most this share of answers.
    crowd_share_ceiling: float = Field(0.6, gt=0, le=1)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    gold_answers: int
    gold_correct: int
    recent_seconds: Sequence[float]  # newest first
    recent_labels: Sequence[str]  # newest first, labeled answers only
    crowd_counts: Mapping[str, int]  # label -> count in a recent sample of everybody's answers


def gold_accuracy_reason(gold_correct: int, gold_answers: int, rules: QualityRules) -> str | None:
    """The gold-accuracy rule alone: why these gold answers suspend a worker, or None. (A
    corrected gold label re-runs it, to reinstate or suspend by the new count.)"""
    if gold_answers >= rules.min_gold_answers:
        accuracy = smoothed_accuracy(gold_correct, gold_answers)
        if accuracy < rules.min_gold_accuracy:
            return (
                f"your accuracy on control questions is {accuracy:.0%}, "
                f"below the required {rules.min_gold_accuracy:.0%}"
            )
    return None


def suspension_reason(record: WorkerRecord, rules: QualityRules) -> str | None:
    """Why this worker should be suspended, in words the worker will read; None if all is well."""
    reason = gold_accuracy_reason(record.gold_correct, record.gold_answers, rules)
    if reason is not None:
        return reason
    if len(record.recent_seconds) >= rules.min_answers_for_speed:
        median = statistics.median(record.recent_seconds)
        if median < rules.min_median_seconds:
            return (
                f"you answer in {median:.1f} s on average, too fast to read the items "
                f"(at least {rules.min_median_seconds:.1f} s expected)"
            )
    window = record.recent_labels[: rules.dominant_window]
    crowd_total = sum(record.crowd_counts.values())
    if len(window) >= rules.dominant_window and crowd_total:
        label, count = Counter(window).most_common(1)[0]
        crowd_share = record.crowd_counts.get(label, 0) / crowd_total
        if count / len(window) >= rules.dominant_label_share and (
            crowd_share <= rules.crowd_share_ceiling
        ):
            return (
                f"you chose “{label}” for {count} of your last {len(window)} items, "
                f"while other workers chose it for {crowd_share:.0%}"
            )
    return None
