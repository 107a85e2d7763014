"""Free-text answers, one row per answer, shaped like ``tasksets.aggregation.Answers``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TextAnswers:
    """Answers as item and worker indexes with the text each worker gave.

    ``items`` and ``workers`` are converted to int64 and range-checked, ``texts`` to a tuple of
    strings as long as ``items``. Row order matters to ROVER only: an item's transcripts are
    aligned in the order of their rows.
    """

    items: np.ndarray  # int64 item index 0..n_items-1
    workers: np.ndarray  # int64 worker index 0..n_workers-1
    texts: Sequence[str]  # the answer of each row, as given
    n_items: int
    n_workers: int

    def __post_init__(self) -> None:
        for name, bound in (("items", self.n_items), ("workers", self.n_workers)):
            values = np.asarray(getattr(self, name), dtype=np.int64)
            if values.ndim != 1 or values.shape != np.shape(self.items):
                raise ValueError(f"{name} must be a 1-D array as long as items")
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise ValueError(f"{name} must lie in 0..{bound - 1}")
            object.__setattr__(self, name, values)
        texts = tuple(self.texts)
        if len(texts) != self.items.size:
            raise ValueError("texts must hold one text per row of items")
        if not all(isinstance(text, str) for text in texts):
            raise ValueError("every text must be a str")
        object.__setattr__(self, "texts", texts)

    def item_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indexes grouped by item (rows of an item in their given order), and the
        offset of each item's first row in that order: ``n_items + 1`` offsets."""
        order = np.argsort(self.items, kind="stable")
        counts = np.bincount(self.items, minlength=self.n_items)
        offsets = np.zeros(self.n_items + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return order, offsets
