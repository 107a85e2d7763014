"""Free-text and transcript answers: normalisation, word error rate, text vote and ROVER.

Pure domain code like the rest of ``tasksets``: standard library and numpy only.
"""

from tasksets.text.answers import TextAnswers
from tasksets.text.error_rate import gold_text_matches, word_edit_distance, word_error_rate
from tasksets.text.normalisation import normalise, words
from tasksets.text.transcripts import rover
from tasksets.text.vote import TextVote, text_vote

__all__ = [
    "TextAnswers",
    "TextVote",
    "gold_text_matches",
    "normalise",
    "rover",
    "text_vote",
    "word_edit_distance",
    "word_error_rate",
    "words",
]
