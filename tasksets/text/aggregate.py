"""One text per item from a text set's typed answers, with a confidence: what an export writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tasksets.text.answers import TextAnswers
from tasksets.text.error_rate import gold_text_matches
from tasksets.text.transcripts import rover
from tasksets.text.vote import text_vote

TextMethod = Literal["vote", "rover"]


@dataclass(frozen=True, slots=True)
class TextAggregate:
    texts: tuple[str | None, ...]  # per item; None where the item has no answers
    confidence: np.ndarray  # float64 per item in [0, 1]; 0.0 where no answers


def aggregate_texts(
    answers: TextAnswers, method: TextMethod = "vote", max_wer: float = 0.1
) -> TextAggregate:
    """The normalised exact-match vote (``text_vote``), or ROVER's word-by-word vote.

    The vote's confidence is the winning form's share of the item's answers. ROVER gives none
    of its own, so its confidence is the share of the item's answers that match its transcript
    as a typed answer matches a gold text: the same normalised words, or a word error rate of
    at most ``max_wer`` (the set's ``gold_max_wer``).
    """
    if method == "vote":
        vote = text_vote(answers)
        return TextAggregate(vote.texts, vote.confidence)
    transcripts = rover(answers)
    matches = np.fromiter(
        (
            gold_text_matches(transcripts[item] or "", text, max_wer)
            for item, text in zip(answers.items.tolist(), answers.texts, strict=True)
        ),
        dtype=np.float64,
        count=answers.items.size,
    )
    counts = np.bincount(answers.items, minlength=answers.n_items)
    agreeing = np.bincount(answers.items, weights=matches, minlength=answers.n_items)
    confidence = np.divide(agreeing, counts, out=np.zeros(answers.n_items), where=counts > 0)
    return TextAggregate(transcripts, confidence)
