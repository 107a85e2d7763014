import math

import numpy as np
import pytest

from tasksets.aggregation import Answers
from tasksets.agreement import krippendorff_alpha, worker_agreement


def answers_from_table(table: list[list[int | None]], n_labels: int) -> Answers:
    """Rows are workers, columns items, None where a worker did not answer."""
    rows = [
        (item, worker, label)
        for worker, row in enumerate(table)
        for item, label in enumerate(row)
        if label is not None
    ]
    items, workers, labels = (np.array(column) for column in zip(*rows, strict=True))
    return Answers(items, workers, labels, len(table[0]), len(table), n_labels)


def test_alpha_matches_krippendorffs_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers,
    # 12 units, values 1-5 (coded 0-4 here), missing data; nominal alpha is 0.743.
    _ = None
    table = [
        [0, 1, 2, 2, 1, 0, 3, 0, 1, _, _, _],
        [0, 1, 2, 2, 1, 1, 3, 0, 1, 4, _, 2],
        [_, 2, 2, 2, 1, 2, 3, 1, 1, 4, 0, _],
        [0, 1, 2, 2, 1, 3, 3, 0, 1, 4, 0, _],
    ]

    assert krippendorff_alpha(answers_from_table(table, 5)) == pytest.approx(0.743, abs=5e-4)


def test_alpha_is_one_for_full_agreement_and_negative_for_systematic_disagreement():
    agreeing = answers_from_table([[0, 1, 1, 0], [0, 1, 1, 0]], 2)
    disagreeing = answers_from_table([[0, 1, 0, 1], [1, 0, 1, 0]], 2)

    assert krippendorff_alpha(agreeing) == pytest.approx(1.0)
    assert krippendorff_alpha(disagreeing) < 0


def test_alpha_is_undefined_without_pairs_or_without_variation():
    single_answers = answers_from_table([[0, 1, None], [None, None, 1]], 2)
    one_label_only = answers_from_table([[1, 1], [1, 1]], 2)

    assert math.isnan(krippendorff_alpha(single_answers))
    assert math.isnan(krippendorff_alpha(one_label_only))


def test_worker_agreement_is_the_share_matching_the_item_labels():
    answers = answers_from_table([[0, 1, 1, 0], [0, 0, 0, 0], [None] * 4], 2)

    share = worker_agreement(answers, np.array([0, 1, 1, 1]))

    assert share[:2].tolist() == [0.75, 0.25]
    assert math.isnan(share[2])
