"""Aggregate the answers of several workers into one label per item.

Three methods, all over plain integer arrays (one row per answer) and fully vectorised:

- ``mv``: majority vote. A tie goes to the lowest label index; confidence is the share of the
  item's answers that chose the winning label.
- ``wawa``: worker agreement with aggregate. Each worker's skill is the share of their answers
  that agree with the majority vote; the label is then a vote weighted by those skills, and
  confidence is the winning label's share of the item's total weight.
- ``ds``: Dawid-Skene expectation-maximisation with one confusion matrix per worker, started
  from the (soft) majority vote. Confidence is the posterior probability of the label; a
  worker's skill is the expected share of their answers that are correct.

Gold items (``gold[item] >= 0``) are clamped to their known label with confidence 1, including
while the methods estimate worker skills, so answers on gold items drive the worker estimates.
An item with no answers and no gold gets label -1 and confidence 0; a worker with no answers
gets skill 0.

Each (item, worker) pair is expected at most once: a repeated pair counts as two votes here.
``tasksets.answers_csv`` drops repeats when it reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from tasksets.agreement import worker_agreement

Method = Literal["mv", "wawa", "ds"]
METHODS: tuple[Method, ...] = get_args(Method)

# Pseudo-count added to every cell of a Dawid-Skene confusion matrix: keeps the log of an
# unseen (worker, true label, answer) combination finite without biasing frequent workers.
_PSEUDO_COUNT = 1e-10


@dataclass(frozen=True, slots=True)
class Answers:
    """Coded answers, one row per answer; arrays are converted to int64 and range-checked."""

    items: np.ndarray  # int64 item index 0..n_items-1
    workers: np.ndarray  # int64 worker index 0..n_workers-1
    labels: np.ndarray  # int64 label index 0..n_labels-1
    n_items: int
    n_workers: int
    n_labels: int

    def __post_init__(self) -> None:
        for name, bound in (
            ("items", self.n_items),
            ("workers", self.n_workers),
            ("labels", self.n_labels),
        ):
            values = np.asarray(getattr(self, name), dtype=np.int64)
            if values.ndim != 1 or values.shape != np.shape(self.items):
                raise ValueError(f"{name} must be a 1-D array as long as items")
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise ValueError(f"{name} must lie in 0..{bound - 1}")
            object.__setattr__(self, name, values)


@dataclass(frozen=True, slots=True)
class Aggregate:
    labels: np.ndarray  # int64 per item, -1 for an item with no answers
    confidence: np.ndarray  # float64 per item in [0,1], 0.0 where no answers
    worker_skill: np.ndarray  # float64 per worker in [0,1]


def aggregate(answers: Answers, method: Method, gold: np.ndarray | None = None) -> Aggregate:
    """Aggregate with the named method; ``gold`` holds a label per item, -1 where unknown."""
    match method:
        case "mv":
            return majority_vote(answers, gold)
        case "wawa":
            return wawa(answers, gold)
        case "ds":
            return dawid_skene(answers, gold)
    raise ValueError(f"unknown aggregation method {method!r}; choose one of {METHODS}")


def majority_vote(answers: Answers, gold: np.ndarray | None = None) -> Aggregate:
    gold = _checked_gold(answers, gold)
    labels, confidence = _weighted_vote(answers, np.ones(answers.items.size), gold)
    return Aggregate(labels, confidence, _agreement_skill(answers, labels))


def wawa(answers: Answers, gold: np.ndarray | None = None) -> Aggregate:
    gold = _checked_gold(answers, gold)
    majority, _ = _weighted_vote(answers, np.ones(answers.items.size), gold)
    skill = _agreement_skill(answers, majority)
    labels, confidence = _weighted_vote(answers, skill[answers.workers], gold)
    return Aggregate(labels, confidence, skill)


def dawid_skene(
    answers: Answers,
    gold: np.ndarray | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> Aggregate:
    """Dawid-Skene EM; stops when the mean log-likelihood per answer gains less than ``tol``."""
    gold = _checked_gold(answers, gold)
    if answers.items.size == 0:
        return majority_vote(answers, gold)
    n_labels = answers.n_labels
    # With answers sorted by item, summing per item is one reduceat and spreading an item's
    # posterior over its answers is one repeat: both much faster than scattered indexing.
    order = np.argsort(answers.items, kind="stable")
    answered, starts, answers_per_item = np.unique(
        answers.items[order], return_index=True, return_counts=True
    )
    # Row of each answer in the (worker, given label) x true label table. The per-answer
    # arrays are one label at a time and int32: peak memory stays a few bytes per answer.
    table_rows = answers.workers[order].astype(np.int32)
    table_rows *= n_labels
    table_rows += answers.labels[order]
    del order
    n_rows = answers.n_workers * n_labels

    def soft_counts(posterior: np.ndarray) -> np.ndarray:
        """Posterior mass per (worker, given label, true label), shape (workers, K, K)."""
        counts = np.empty((n_rows, n_labels))
        for true in range(n_labels):
            mass = np.repeat(posterior[:, true], answers_per_item)
            counts[:, true] = np.bincount(table_rows, weights=mass, minlength=n_rows)
        return counts.reshape(answers.n_workers, n_labels, n_labels)

    gold_rows = np.flatnonzero(gold[answered] >= 0)
    gold_posterior = np.eye(n_labels)[gold[answered][gold_rows]]
    votes = _label_counts(answers, np.ones(answers.items.size))[answered]
    posterior = votes / answers_per_item[:, None]
    posterior[gold_rows] = gold_posterior
    log_likelihood = -np.inf
    for _ in range(max_iter):
        confusion = soft_counts(posterior) + _PSEUDO_COUNT
        confusion /= confusion.sum(axis=1, keepdims=True)  # P(given | true) per worker
        log_prior = np.log(np.maximum(posterior.mean(axis=0), 1e-12))
        log_confusion = np.log(confusion).reshape(n_rows, n_labels)
        log_joint = np.empty((answered.size, n_labels))
        for true in range(n_labels):
            log_joint[:, true] = np.add.reduceat(log_confusion[table_rows, true], starts)
        log_joint += log_prior
        peak = log_joint.max(axis=1, keepdims=True)
        log_evidence = peak + np.log(np.exp(log_joint - peak).sum(axis=1, keepdims=True))
        posterior = np.exp(log_joint - log_evidence)
        posterior[gold_rows] = gold_posterior
        new_log_likelihood = float(log_evidence.sum()) / answers.items.size
        converged = new_log_likelihood - log_likelihood < tol
        log_likelihood = new_log_likelihood
        if converged:
            break

    final_counts = soft_counts(posterior)
    given = final_counts.sum(axis=(1, 2))
    correct = np.trace(final_counts, axis1=1, axis2=2)
    skill = np.divide(correct, given, out=np.zeros(answers.n_workers), where=given > 0)

    labels = np.full(answers.n_items, -1, dtype=np.int64)
    confidence = np.zeros(answers.n_items)
    labels[answered] = posterior.argmax(axis=1)
    confidence[answered] = posterior.max(axis=1)
    _clamp_to_gold(labels, confidence, gold)
    return Aggregate(labels, np.clip(confidence, 0.0, 1.0), np.clip(skill, 0.0, 1.0))


def _checked_gold(answers: Answers, gold: np.ndarray | None) -> np.ndarray:
    if gold is None:
        return np.full(answers.n_items, -1, dtype=np.int64)
    gold = np.asarray(gold, dtype=np.int64)
    if gold.shape != (answers.n_items,):
        raise ValueError(f"gold must hold one label per item ({answers.n_items})")
    if gold.size and (gold.min() < -1 or gold.max() >= answers.n_labels):
        raise ValueError(f"gold labels must lie in 0..{answers.n_labels - 1}, or -1 for unknown")
    return gold


def _label_counts(answers: Answers, weights: np.ndarray) -> np.ndarray:
    """Total answer weight per (item, label), shape (n_items, n_labels)."""
    cells = answers.items * answers.n_labels + answers.labels
    size = answers.n_items * answers.n_labels
    return np.bincount(cells, weights=weights, minlength=size).reshape(
        answers.n_items, answers.n_labels
    )


def _weighted_vote(
    answers: Answers, weights: np.ndarray, gold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Winning label (ties to the lowest index) and its share of each item's weight."""
    counts = _label_counts(answers, weights)
    total = counts.sum(axis=1)
    labels = counts.argmax(axis=1)
    winner = counts[np.arange(answers.n_items), labels]
    confidence = np.divide(winner, total, out=np.zeros(answers.n_items), where=total > 0)
    has_answers = np.bincount(answers.items, minlength=answers.n_items) > 0
    labels[~has_answers] = -1
    _clamp_to_gold(labels, confidence, gold)
    return labels, confidence


def _clamp_to_gold(labels: np.ndarray, confidence: np.ndarray, gold: np.ndarray) -> None:
    known = gold >= 0
    labels[known] = gold[known]
    confidence[known] = 1.0


def _agreement_skill(answers: Answers, item_labels: np.ndarray) -> np.ndarray:
    return np.nan_to_num(worker_agreement(answers, item_labels), nan=0.0)
