"""How much workers agree: with each other (Krippendorff's alpha) and with the aggregate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # aggregation imports this module, so Answers is for annotations only
    from tasksets.aggregation import Answers


def krippendorff_alpha(answers: Answers) -> float:
    """Krippendorff's alpha for nominal labels, items as units and workers as coders.

    1 is perfect agreement, 0 is agreement at chance level, below 0 systematic disagreement.
    Items with fewer than two answers carry no pairs and are left out. Returns nan when alpha
    is undefined: no item has two answers, or every answer has the same label.
    """
    n_labels = answers.n_labels
    counts = np.bincount(
        answers.items * n_labels + answers.labels, minlength=answers.n_items * n_labels
    ).reshape(answers.n_items, n_labels)
    per_item = counts.sum(axis=1)
    counts, per_item = counts[per_item >= 2], per_item[per_item >= 2]
    if counts.size == 0:
        return float("nan")
    # Coincidence matrix: each ordered pair of answers within an item, weighted 1/(m_u - 1).
    weighted = counts / (per_item - 1)[:, None]
    coincidences = counts.T @ weighted - np.diag(weighted.sum(axis=0))
    per_label = coincidences.sum(axis=0)
    pairable = per_label.sum()
    expected = pairable * (pairable - 1) - float(per_label @ (per_label - 1))
    if expected == 0:
        return float("nan")
    observed = (pairable - 1) * float(np.trace(coincidences)) - float(per_label @ (per_label - 1))
    return observed / expected


def worker_agreement(answers: Answers, item_labels: np.ndarray) -> np.ndarray:
    """Per worker, the share of their answers equal to the item's label; nan with no answers.

    Answers on items whose label is -1 (not aggregated) count as disagreeing.
    """
    agrees = answers.labels == np.asarray(item_labels)[answers.items]
    given = np.bincount(answers.workers, minlength=answers.n_workers)
    agreed = np.bincount(answers.workers, weights=agrees, minlength=answers.n_workers)
    share = np.full(answers.n_workers, np.nan)
    np.divide(agreed, given, out=share, where=given > 0)
    return share
