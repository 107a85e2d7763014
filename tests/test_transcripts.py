"""Free-text aggregation: normalisation, word error rate, gold matching, text vote and ROVER.

ROVER must equal crowd-kit's. Always: against ``tests/data/rover_reference.json``, written by
crowd-kit 1.4.2 from seeded synthetic transcripts (regenerate with
``.venv/bin/python -m tests.test_transcripts`` and the ``bench`` extra installed), and against
``reference_rover`` below, a plain port of crowd-kit's algorithm, on hypothesis' inputs. When
crowd-kit is importable, also against crowd-kit itself on fresh random inputs.
"""

from __future__ import annotations

import importlib.util
import json
import random
import secrets
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tasksets.text.transcripts as transcripts_module
from tasksets.text import (
    TextAnswers,
    gold_text_matches,
    normalise,
    rover,
    text_vote,
    word_edit_distance,
    word_error_rate,
    words,
)

REFERENCE = Path(__file__).resolve().parent / "data" / "rover_reference.json"
HAS_CROWDKIT = all(importlib.util.find_spec(name) for name in ("crowdkit", "pandas"))
needs_crowdkit = pytest.mark.skipif(
    not HAS_CROWDKIT, reason="crowd-kit is not installed (pip install -e '.[bench]')"
)

TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "split_space": lambda text: text.split(" "),  # crowd-kit's documented example: "" tokens
    "split": str.split,
    "words": words,  # our default: normalise, then split
}
DETOKENIZERS: dict[str, Callable[[list[str]], str]] = {"space": " ".join, "dash": "-".join}


def answers_of(rows: Sequence[tuple[int, int, str]], n_items: int | None = None) -> TextAnswers:
    items = np.array([row[0] for row in rows], dtype=np.int64)
    workers = np.array([row[1] for row in rows], dtype=np.int64)
    if n_items is None:
        n_items = int(items.max()) + 1 if items.size else 0
    n_workers = int(workers.max()) + 1 if workers.size else 0
    return TextAnswers(items, workers, [row[2] for row in rows], n_items, n_workers)


def transcripts_rover(transcripts: list[str], **kwargs: Any) -> str | None:
    """ROVER of one item's transcripts, in the given order."""
    return rover(
        answers_of([(0, worker, text) for worker, text in enumerate(transcripts)]), **kwargs
    )[0]


# --- normalise ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Caf\u00e9", "café"),  # composed é
        ("Cafe\u0301", "café"),  # e + combining acute: composed by NFKC
        ("cafe", "cafe"),  # accents are kept: "cafe" is another word
        ("ＮＥＷ　ＹＯＲＫ ４２", "new york 42"),  # full-width letters, digits, ideographic space
        ("\ufb01ne", "fine"),  # the "fi" ligature
        ("Straße", "strasse"),  # casefold, not lower
        ("“Don’t” stop", "don't stop"),  # curly quotes go, a curly apostrophe in a word stays
        ("don't", "don't"),
        ("м\u02bcясо", "м'ясо"),  # modifier-letter apostrophe (Ukrainian) unified
        ("'quoted' and workers'", "quoted and workers"),  # apostrophes outside words go
        ("its", "its"),  # and "it's" stays another word
        ("it's", "it's"),
        ("a  b\n\n c\t", "a b c"),  # whitespace collapsed and stripped
        ("Hello, world!!!", "hello world"),  # trailing and inner punctuation
        ("well-known", "well known"),  # punctuation separates words
        ("U.S.A.", "u s a"),
        ("«Привет» — мир…", "привет мир"),
        ("$10 + 1 = 11 €", "$10 + 1 = 11 €"),  # symbols are kept
        ("5% & #1 @home", "5 1 home"),  # but Unicode counts % & # @ as punctuation
        ("Great 👍", "great 👍"),  # emoji kept
        ("\u2764\ufe0f", "\u2764"),  # the emoji variation selector dropped
        ("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),  # invisible removed
        ("bell\x07", "bell"),  # control characters removed
        ("?!...", ""),  # punctuation only
        ("", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_normalise_equates_composed_and_decomposed_forms() -> None:
    composed = "Ångström résumé"
    assert normalise(composed) == normalise(unicodedata.normalize("NFD", composed))


@settings(max_examples=500)
@given(st.text())
def test_normalise_is_idempotent_and_clean(text: str) -> None:
    normal = normalise(text)
    assert normalise(normal) == normal
    assert normal == normal.strip()
    assert "  " not in normal
    assert all(not unicodedata.category(char).startswith("P") for char in normal.replace("'", ""))
    assert words(text) == normal.split()


# --- word error rate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 0.0),
        ("The cat sat.", "the  cat, sat", 0.0),  # normalised first
        ("the cat sat on", "the dog sat on", 1 / 4),  # one substitution
        ("the cat sat on", "the sat on", 1 / 4),  # one deletion
        ("the cat sat on", "the cat sat down on", 1 / 4),  # one insertion
        # substitution sat->sit, deletion of the second "the", insertion of "today"
        ("the cat sat on the mat", "the cat sit on mat today", 3 / 6),
        ("a b c d", "b c d a", 2 / 4),  # a shift: delete "a" in front, insert it at the end
        ("a b c d", "d c b a", 4 / 4),  # a reversal: no alignment keeps a word for less
        ("one two", "", 1.0),  # every word deleted
        ("a", "b c d", 3.0),  # longer than the reference: above 1
        ("", "", 0.0),  # empty reference: counts as one word
        ("...", "hello world", 2.0),  # nothing left of the reference: each word an error
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, expected: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)


def plain_edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Textbook Levenshtein over words, row by row."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        current = [i]
        for j, other in enumerate(hypothesis, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1]


word_lists = st.lists(st.sampled_from(["a", "b", "c", "dd", "e"]), max_size=90)


@settings(max_examples=300)
@given(word_lists, word_lists)
def test_bit_vector_edit_distance_equals_the_textbook_one(
    reference: list[str], hypothesis: list[str]
) -> None:
    # Up to 90 words: past 64 the bit vectors are multi-word Python integers.
    assert word_edit_distance(reference, hypothesis) == plain_edit_distance(reference, hypothesis)


@settings(max_examples=300)
@given(st.text(max_size=40), st.text(max_size=40))
def test_word_error_rate_is_finite_and_zero_only_for_equal_texts(
    reference: str, hypothesis: str
) -> None:
    rate = word_error_rate(reference, hypothesis)
    assert 0.0 <= rate < float("inf")
    assert (rate == 0.0) == (normalise(reference) == normalise(hypothesis))
    assert word_error_rate(reference, reference) == 0.0


# --- gold matching -----------------------------------------------------------------------

TEN_WORDS = "one two three four five six seven eight nine ten"


@pytest.mark.parametrize(
    ("expected", "given_text", "max_wer", "matches"),
    [
        ("New York", "new york.", 0.1, True),  # normalised match
        ("New York", " NEW  YORK!", 0.0, True),
        ("New York", "New Jersey", 0.1, False),  # 1 error in 2 words
        ("New York", "New Jersey", 0.5, True),
        (TEN_WORDS, TEN_WORDS.replace("five", "fife"), 0.1, True),  # 1 error in 10 words
        (TEN_WORDS, TEN_WORDS.replace("five", "fife").replace("six", "sax"), 0.1, False),
        (TEN_WORDS.removesuffix(" ten"), TEN_WORDS.replace("five ", ""), 0.1, False),  # 2/9
        ("one two three four five six seven eight nine", "one two three four", 0.1, False),
        ("", "", 0.1, True),
        ("", "anything", 0.1, False),
        ("something", "", 0.1, False),
        ("New York", "new york", -1.0, True),  # a negative threshold: exact only
        (TEN_WORDS, TEN_WORDS.replace("five", "fife"), -1.0, False),
    ],
)
def test_gold_text_matches(expected: str, given_text: str, max_wer: float, matches: bool) -> None:
    assert gold_text_matches(expected, given_text, max_wer=max_wer) is matches


def test_gold_text_matches_defaults_to_one_error_in_ten_words() -> None:
    assert gold_text_matches(TEN_WORDS, TEN_WORDS + " eleven")
    assert not gold_text_matches(TEN_WORDS, TEN_WORDS + " eleven twelve")


# --- text vote ---------------------------------------------------------------------------


def test_text_vote_counts_normalised_forms_and_reports_the_common_spelling() -> None:
    result = text_vote(
        answers_of(
            [
                (0, 0, "Paris"),
                (0, 1, " paris."),
                (0, 2, "Paris\n"),
                (0, 3, "London"),
                (1, 0, "42"),
                (1, 1, "４２"),
                (1, 2, "24"),
            ],
            n_items=3,
        )
    )
    assert result.texts == ("Paris", "42", None)
    assert result.forms == ("paris", "42", None)
    np.testing.assert_allclose(result.confidence, [3 / 4, 2 / 3, 0.0])


def test_text_vote_ties_go_to_the_form_and_spelling_that_sort_first() -> None:
    result = text_vote(
        answers_of(
            [
                (0, 0, "Rome"),
                (0, 1, "Milan"),  # 1-1: "milan" sorts before "rome"
                (1, 0, "paris"),
                (1, 1, "Paris"),  # one form; spellings 1-1: "Paris" before "paris"
                (2, 0, "b"),
                (2, 1, "a"),
                (2, 2, "B"),
                (2, 3, "A"),  # forms 2-2: "a"; its spellings 1-1: "A"
            ]
        )
    )
    assert result.texts == ("Milan", "Paris", "A")
    np.testing.assert_allclose(result.confidence, [0.5, 1.0, 0.5])


def test_text_vote_lets_an_empty_answer_win() -> None:
    result = text_vote(answers_of([(0, 0, "?"), (0, 1, "..."), (0, 2, "yes")]))
    assert result.forms == ("",)
    assert result.texts == ("...",)  # "..." sorts before "?"
    assert result.confidence[0] == pytest.approx(2 / 3)


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4), st.sampled_from(["a", "A", "a.", "b", "B!", " b", "c", "", "¿c?"])
        ),
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_text_vote_does_not_depend_on_row_order(
    pairs: list[tuple[int, str]], rng: random.Random
) -> None:
    rows = [(item, worker, text) for worker, (item, text) in enumerate(pairs)]
    shuffled = rows[:]
    rng.shuffle(shuffled)
    first, second = text_vote(answers_of(rows, 5)), text_vote(answers_of(shuffled, 5))
    assert first.texts == second.texts
    np.testing.assert_array_equal(first.confidence, second.confidence)
    for item in range(5):
        forms = Counter(normalise(text) for i, _, text in rows if i == item)
        if not forms:
            assert first.texts[item] is None
            continue
        top = max(forms.values())
        assert first.forms[item] == min(form for form, count in forms.items() if count == top)
        assert first.confidence[item] == pytest.approx(top / sum(forms.values()))
        assert normalise(str(first.texts[item])) == first.forms[item]


def test_text_answers_are_checked() -> None:
    with pytest.raises(ValueError, match=r"items must lie in 0\.\.1"):
        TextAnswers(np.array([2]), np.array([0]), ["x"], 2, 1)
    with pytest.raises(ValueError, match="one text per row"):
        TextAnswers(np.array([0, 1]), np.array([0, 0]), ["x"], 2, 1)
    with pytest.raises(ValueError, match="must be a str"):
        TextAnswers(np.array([0]), np.array([0]), [None], 1, 1)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="workers must be a 1-D array"):
        TextAnswers(np.array([0]), np.array([[0]]), ["x"], 1, 1)


# --- ROVER: hand-made examples -----------------------------------------------------------


def test_rover_of_identical_transcripts_is_that_transcript() -> None:
    assert transcripts_rover(["The cat sat."] * 4) == "the cat sat"


def test_rover_outvotes_one_deviant_worker() -> None:
    transcripts = ["the cat sat on the mat", "the cat sat on a hat", "the cat sat on the mat"]
    assert transcripts_rover(transcripts) == "the cat sat on the mat"
    # The deviant first: its words are the backbone, and still lose.
    assert transcripts_rover(transcripts[1:] + transcripts[:1]) == "the cat sat on the mat"


def test_rover_drops_a_lone_insertion_and_keeps_a_lone_deletion() -> None:
    assert transcripts_rover(["the big cat sat", "the cat sat", "the cat sat"]) == "the cat sat"
    assert transcripts_rover(["the cat sat", "the cat sat", "the sat"]) == "the cat sat"
    assert transcripts_rover(["the cat sat", "the cat", "the cat"]) == "the cat"


def test_rover_inserted_words_that_agree_win() -> None:
    assert transcripts_rover(["one three", "one two three", "one two three"]) == "one two three"


def test_rover_slot_ties_go_to_the_longer_word_then_the_later_one() -> None:
    assert transcripts_rover(["a bb", "a c"]) == "a bb"
    assert transcripts_rover(["a c", "a bb"]) == "a bb"
    assert transcripts_rover(["a b", "a c"]) == "a c"
    assert transcripts_rover(["a c", "a b"]) == "a c"
    # A word against a deletion, 1-1: the word is longer than "".
    assert transcripts_rover(["a b", "a"]) == "a b"


def test_rover_edge_cases() -> None:
    answers = answers_of([(1, 0, "only one"), (2, 0, ""), (2, 1, "   "), (3, 0, "")], n_items=5)
    assert rover(answers) == (None, "only one", "", "", None)
    assert rover(answers_of([], n_items=2)) == (None, None)


def test_rover_aligns_each_item_in_its_row_order() -> None:
    rows = [(0, 0, "x y"), (1, 0, "p"), (0, 1, "x z"), (1, 1, "q"), (0, 2, "x")]
    # Item 0 gets "x y", "x z", "x" in that order, whatever is between them.
    assert rover(answers_of(rows)) == (
        transcripts_rover(["x y", "x z", "x"]),
        transcripts_rover(["p", "q"]),
    )


def test_rover_uses_the_given_tokenizer_and_detokenizer() -> None:
    result = transcripts_rover(
        ["A-B-C", "A-B-D", "A-B-C"],
        tokenizer=lambda text: text.split("-"),
        detokenizer="+".join,
    )
    assert result == "A+B+C"


def test_rover_is_the_same_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = synthetic_rows(random.Random(5), 300, "words")
    whole = rover(answers_of(rows, 300))
    monkeypatch.setattr(transcripts_module, "_CHUNK_CELLS", 64)
    assert rover(answers_of(rows, 300)) == whole


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from(["alpha", "beta", "gamma", "d", "ee"]), max_size=12),
    st.integers(1, 7),
)
def test_rover_of_identical_transcripts_property(tokens: list[str], copies: int) -> None:
    text = " ".join(tokens)
    assert transcripts_rover([text] * copies) == text
    assert transcripts_rover([text] * copies, tokenizer=TOKENIZERS["split_space"]) == text


# --- ROVER equals crowd-kit --------------------------------------------------------------


def reference_rover(
    transcripts: Sequence[str],
    tokenizer: Callable[[str], Sequence[str]],
    detokenizer: Callable[[list[str]], str],
) -> str:
    """crowd-kit 1.4.2's ``ROVER`` for one item, ported to plain Python with Counters.

    Each slot counts its tokens; cell choices prefer the diagonal, then skipping the slot,
    then inserting; a slot's winner has the most votes, then the longest, then the last token.
    """
    hypotheses = [list(tokenizer(text)) for text in transcripts]
    slots = [Counter({token: 1}) for token in hypotheses[0]]
    for count, hypothesis in enumerate(hypotheses[1:], start=1):
        rows, columns = len(hypothesis), len(slots)
        cost = [[0] * (columns + 1) for _ in range(rows + 1)]
        choice = [["skip"] * (columns + 1) for _ in range(rows + 1)]
        for i in range(rows + 1):
            cost[i][0], choice[i][0] = i, "insert"
        for j in range(columns + 1):
            cost[0][j] = j
        for i in range(1, rows + 1):
            for j in range(1, columns + 1):
                diagonal = cost[i - 1][j - 1] + (hypothesis[i - 1] not in slots[j - 1])
                skip = cost[i][j - 1] + ("" not in slots[j - 1])
                insert = cost[i - 1][j] + 1
                cost[i][j] = min(diagonal, skip, insert)
                if diagonal == cost[i][j]:
                    choice[i][j] = "diagonal"
                elif skip == cost[i][j]:
                    choice[i][j] = "skip"
                else:
                    choice[i][j] = "insert"
        merged = []
        i, j = rows, columns
        while i or j:
            if choice[i][j] == "insert":
                slot = Counter({"": count})
                slot[hypothesis[i - 1]] += 1
                i -= 1
            else:
                slot = slots[j - 1].copy()
                slot[hypothesis[i - 1] if choice[i][j] == "diagonal" else ""] += 1
                i, j = (i - 1, j - 1) if choice[i][j] == "diagonal" else (i, j - 1)
            merged.append(slot)
        slots = merged[::-1]
    winners = [
        max(slot.items(), key=lambda pair: (pair[1], len(pair[0]), pair[0])) for slot in slots
    ]
    return detokenizer([token for token, _ in winners if token != ""])


ALPHABET = ["a", "an", "the", "cat", "cats", "sat", "on", "mat", "mats", "x", "yy", "zzz", "dog"]


def synthetic_rows(rng: random.Random, n_items: int, style: str) -> list[tuple[int, int, str]]:
    """Seeded transcripts with substitutions, deletions, insertions, swaps and empty answers;
    some items get no answers. Rows come in a random order, items interleaved."""
    rows: list[tuple[int, int, str]] = []
    for item in range(n_items):
        if rng.random() < 0.03:
            continue
        truth = rng.choices(ALPHABET, k=rng.randint(0, 12))
        for worker in range(rng.randint(1, 7)):
            rate = rng.choice([0.0, 0.1, 0.2, 0.4, 0.7])
            heard: list[str] = []
            for token in truth:
                draw = rng.random()
                if draw >= rate:
                    heard.append(token)
                elif draw < rate / 3:
                    heard.append(rng.choice(ALPHABET))
                elif draw < rate * 2 / 3:
                    heard += [token, rng.choice(ALPHABET)]
            if len(heard) > 2 and rng.random() < 0.2:
                k = rng.randrange(len(heard) - 1)
                heard[k], heard[k + 1] = heard[k + 1], heard[k]
            if rng.random() < 0.05:
                heard = []
            rows.append((item, worker, spell(heard, rng, style)))
    rng.shuffle(rows)
    return rows


def spell(tokens: list[str], rng: random.Random, style: str) -> str:
    if style == "split_space":  # double and trailing spaces make "" tokens
        return "".join(token + rng.choice([" ", " ", " ", "  "]) for token in tokens).removesuffix(
            " " if rng.random() < 0.7 else ""
        )
    if style == "split":
        return "".join(token + rng.choice([" ", "\n", "\t ", "  "]) for token in tokens)
    text = " ".join(
        token.capitalize() + rng.choice(["", "", ",", "!"]) if rng.random() < 0.2 else token
        for token in tokens
    )
    return text + rng.choice(["", ".", "?"])


# (style, tokenizer, detokenizer, items, seed) of each reference case.
REFERENCE_CASES = [
    ("split_space", "split_space", "space", 150, 1),
    ("split", "split", "dash", 100, 2),
    ("words", "words", "space", 150, 3),
]


def crowdkit_rover(
    rows: Sequence[tuple[int, int, str]], n_items: int, tokenizer: str, detokenizer: str
) -> list[str | None]:
    import pandas as pd
    from crowdkit.aggregation import ROVER

    frame = pd.DataFrame(list(rows), columns=["task", "worker", "text"])
    texts = ROVER(TOKENIZERS[tokenizer], DETOKENIZERS[detokenizer]).fit_predict(frame)
    return [str(texts[item]) if item in texts.index else None for item in range(n_items)]


def write_reference() -> None:
    """Run crowd-kit on the reference cases and write ``REFERENCE``."""
    from importlib.metadata import version

    cases: list[dict[str, Any]] = []
    for style, tokenizer, detokenizer, n_items, seed in REFERENCE_CASES:
        rows = synthetic_rows(random.Random(seed), n_items, style)
        cases.append(
            {
                "tokenizer": tokenizer,
                "detokenizer": detokenizer,
                "n_items": n_items,
                "rows": rows,
                "expected": crowdkit_rover(rows, n_items, tokenizer, detokenizer),
            }
        )
    # One row per line, so that a regenerated file diffs readably.
    written_by = f"crowd-kit {version('crowd-kit')} ROVER, python -m tests.test_transcripts"
    lines = ["{", f'"written_by": {json.dumps(written_by)},', '"cases": [']
    for index, case in enumerate(cases):
        head = {key: case[key] for key in ("tokenizer", "detokenizer", "n_items")}
        lines.append(json.dumps(head)[:-1] + ', "rows": [')
        lines.append(",\n".join(json.dumps(row, ensure_ascii=False) for row in case["rows"]))
        lines.append('], "expected": [')
        lines.append(",\n".join(json.dumps(text, ensure_ascii=False) for text in case["expected"]))
        lines.append("]}" + ("," if index < len(cases) - 1 else ""))
    lines += ["]", "}"]
    REFERENCE.write_text("\n".join(lines) + "\n")


def reference_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(REFERENCE.read_text())["cases"]
    return cases


def test_reference_file_is_large_and_varied() -> None:
    cases = reference_cases()
    assert {case["tokenizer"] for case in cases} == set(TOKENIZERS)
    assert sum(case["n_items"] for case in cases) >= 300
    expected = [text for case in cases for text in case["expected"]]
    assert None in expected and "" in expected
    transcripts_per_item = Counter(
        (index, row[0]) for index, case in enumerate(cases) for row in case["rows"]
    )
    assert set(transcripts_per_item.values()) == set(range(1, 8))


@pytest.mark.parametrize("case", range(len(REFERENCE_CASES)))
def test_rover_equals_crowdkit_reference_file(case: int) -> None:
    reference = reference_cases()[case]
    rows = [(item, worker, text) for item, worker, text in reference["rows"]]
    answers = answers_of(rows, reference["n_items"])
    ours = rover(
        answers, TOKENIZERS[reference["tokenizer"]], DETOKENIZERS[reference["detokenizer"]]
    )
    assert list(ours) == reference["expected"]


@settings(max_examples=300)
@given(
    st.lists(
        st.lists(st.sampled_from(["a", "bb", "c", "", "dd", "a a"]), max_size=9).map(" ".join),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(sorted(TOKENIZERS)),
)
def test_rover_equals_the_plain_port(transcripts: list[str], tokenizer: str) -> None:
    expected = reference_rover(transcripts, TOKENIZERS[tokenizer], " ".join)
    assert transcripts_rover(transcripts, tokenizer=TOKENIZERS[tokenizer]) == expected


@pytest.mark.parametrize("case", range(len(REFERENCE_CASES)))
def test_plain_port_equals_crowdkit_reference_file(case: int) -> None:
    """The port is itself checked against crowd-kit, so the test above is too."""
    reference = reference_cases()[case]
    by_item: dict[int, list[str]] = {}
    for item, _, text in reference["rows"]:
        by_item.setdefault(item, []).append(text)
    tokenizer, detokenizer = (
        TOKENIZERS[reference["tokenizer"]],
        DETOKENIZERS[reference["detokenizer"]],
    )
    for item, expected in enumerate(reference["expected"]):
        if expected is not None:
            assert reference_rover(by_item[item], tokenizer, detokenizer) == expected


@needs_crowdkit
@pytest.mark.parametrize("style", ["split_space", "split", "words"])
def test_rover_equals_crowdkit_live(style: str) -> None:
    seed = secrets.randbits(32)
    rows = synthetic_rows(random.Random(seed), 400, style)
    detokenizer = "space"
    expected = crowdkit_rover(rows, 400, style, detokenizer)
    ours = rover(answers_of(rows, 400), TOKENIZERS[style], DETOKENIZERS[detokenizer])
    assert list(ours) == expected, f"seed {seed}"


@needs_crowdkit
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.lists(st.sampled_from(["a", "bb", "c", "", "dd", "ee", "a b"]), max_size=8).map(
                " ".join
            ),
        ),
        max_size=25,
    ),
    st.sampled_from(sorted(TOKENIZERS)),
)
def test_rover_equals_crowdkit_on_hypothesis_inputs(
    pairs: list[tuple[int, str]], tokenizer: str
) -> None:
    rows = [(item, worker, text) for worker, (item, text) in enumerate(pairs)]
    expected = crowdkit_rover(rows, 6, tokenizer, "space")
    assert list(rover(answers_of(rows, 6), TOKENIZERS[tokenizer])) == expected


if __name__ == "__main__":
    if not HAS_CROWDKIT:
        sys.exit("crowd-kit is not installed: pip install -e '.[bench]'")
    write_reference()
    print(f"wrote {REFERENCE}")
