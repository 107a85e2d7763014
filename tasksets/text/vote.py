"""Majority vote over normalised free-text answers (short, exact answers: a name, a number)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasksets.text.answers import TextAnswers
from tasksets.text.normalisation import normalise


@dataclass(frozen=True, slots=True)
class TextVote:
    texts: tuple[str | None, ...]  # per item: the winning form's most common spelling; None
    # where the item has no answers
    forms: tuple[str | None, ...]  # per item: the winning normalised form
    confidence: np.ndarray  # float64 per item: the winning form's share of its answers, 0.0
    # where none


def text_vote(answers: TextAnswers) -> TextVote:
    """Per item, the normalised form most answers share, with the share as its confidence.

    - Answers vote by ``normalise``: ``"Paris"``, ``" paris."`` and ``"PARIS"`` are one vote
      each for ``"paris"``. An answer with no words votes for ``""``, which can win.
    - A tie between forms goes to the form that sorts first (Python string order, by code
      point), so the result does not depend on the order of the rows.
    - The text reported is the spelling most answers with the winning form used, counting
      spellings with their whitespace collapsed and stripped (``" Paris\\n"`` is ``"Paris"``);
      a tie again goes to the spelling that sorts first (``"Paris"`` before ``"paris"``).
    """
    n_items = answers.n_items
    spellings = [" ".join(text.split()) for text in answers.texts]
    forms = [normalise(text) for text in spellings]
    form_names, form_codes = _sorted_codes(forms)
    spelling_names, spelling_codes = _sorted_codes(spellings)

    winning_form, winning_count = _most_common(answers.items, form_codes, len(form_names), n_items)
    rows_for_winner = form_codes == winning_form[answers.items]
    winning_spelling, _ = _most_common(
        answers.items[rows_for_winner],
        spelling_codes[rows_for_winner],
        len(spelling_names),
        n_items,
    )

    answer_counts = np.bincount(answers.items, minlength=n_items)
    confidence = np.divide(
        winning_count, answer_counts, out=np.zeros(n_items), where=answer_counts > 0
    )
    has_answers = answer_counts > 0
    return TextVote(
        texts=tuple(
            spelling_names[code] if present else None
            for code, present in zip(winning_spelling.tolist(), has_answers.tolist(), strict=True)
        ),
        forms=tuple(
            form_names[code] if present else None
            for code, present in zip(winning_form.tolist(), has_answers.tolist(), strict=True)
        ),
        confidence=confidence,
    )


def _sorted_codes(values: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct values in sorted order, and each value's index among them."""
    names = sorted(set(values))
    index = {name: code for code, name in enumerate(names)}
    return names, np.fromiter((index[value] for value in values), np.int64, len(values))


def _most_common(
    items: np.ndarray, codes: np.ndarray, n_codes: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the code given most often (ties to the lowest code) and its count; an item
    with no rows gets code 0 and count 0 (the caller masks it)."""
    pairs, counts = np.unique(items * n_codes + codes, return_counts=True)
    pair_items, pair_codes = np.divmod(pairs, n_codes)
    # Sorted by item, then by count descending, then by code: the first row of an item wins.
    order = np.lexsort((pair_codes, -counts, pair_items))
    first = np.ones(order.size, dtype=bool)
    first[1:] = pair_items[order][1:] != pair_items[order][:-1]
    winners = order[first]
    code = np.zeros(n_items, dtype=np.int64)
    count = np.zeros(n_items, dtype=np.int64)
    code[pair_items[winners]] = pair_codes[winners]
    count[pair_items[winners]] = counts[winners]
    return code, count
