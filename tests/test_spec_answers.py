"""Task sets answered otherwise than by a tap on a label: typed replies, voice notes, and the
review rule; what loads, and the message a coordinator reads for each mistake."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tasksets.parsing import SpecOverrides, TaskSetError, parse_taskset_bytes
from tasksets.review import ReviewRule, is_reviewer


def transcription(**fields: object) -> bytes:
    spec: dict[str, object] = {
        "name": "transcribe-v1",
        "answer": "text",
        "question": "Type what the image says",
        "items": [
            {"id": "t1", "image": "https://example.org/1.png"},
            {"id": "g1", "text": "Read: the cat sat", "gold": "the cat sat"},
        ],
    }
    return json.dumps(spec | fields).encode()


def problems_of(data: bytes, fmt: str = "json", **overrides: object) -> list[str]:
    with pytest.raises(TaskSetError) as caught:
        parse_taskset_bytes(data, fmt, SpecOverrides(**overrides))  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


def test_a_text_set_needs_no_labels_and_takes_a_gold_text() -> None:
    spec = parse_taskset_bytes(transcription(gold_max_wer=0.2, aggregate="rover"), "json")

    assert (spec.answer, spec.labels, spec.max_length) == ("text", [], 1000)
    assert (spec.gold_max_wer, spec.aggregate) == (0.2, "rover")
    assert spec.items[1].gold == "the cat sat"


def test_a_voice_set_takes_its_length_limits() -> None:
    items = [{"id": "s1", "text": "Read aloud: good morning"}]
    spec = parse_taskset_bytes(
        transcription(answer="voice", min_seconds=1, max_seconds=30, items=items), "json"
    )

    assert (spec.answer, spec.min_seconds, spec.max_seconds) == ("voice", 1, 30)


def test_labels_on_a_text_set_are_refused() -> None:
    assert problems_of(transcription(labels=["a", "b"])) == [
        "field 'labels': a set answered with \"text\" takes no labels"
    ]


def test_a_labels_set_still_needs_two_labels() -> None:
    data = json.dumps({"name": "s", "labels": ["only"], "items": [{"id": "1", "text": "x"}]})
    assert problems_of(data.encode()) == ["field 'labels': needs at least 2 entries, got 1"]


def test_options_of_another_kind_of_answer_are_refused() -> None:
    data = transcription(min_seconds=2)
    assert problems_of(data) == [
        'field \'min_seconds\': applies to sets answered with "voice" or "text_or_voice",'
        ' not "text"'
    ]
    labelled = json.dumps(
        {"name": "s", "labels": ["a", "b"], "max_length": 20, "items": [{"id": "1", "text": "x"}]}
    )
    assert problems_of(labelled.encode()) == [
        'field \'max_length\': applies to sets answered with "text" or "text_or_voice",'
        ' not "labels"'
    ]


def test_voice_limits_must_be_in_order() -> None:
    items = [{"id": "s1", "text": "Say hi"}]
    data = transcription(answer="voice", min_seconds=10, max_seconds=5, items=items)
    assert problems_of(data) == ["field 'min_seconds': 10.0 is more than max_seconds 5.0"]


def test_gold_text_longer_than_the_answer_limit_is_refused() -> None:
    items = [{"id": "g1", "text": "x", "gold": "far too long for this"}]
    assert problems_of(transcription(max_length=5, items=items)) == [
        "item 'g1' field 'gold': is longer than max_length 5"
    ]


def test_gold_on_a_voice_set_is_refused() -> None:
    items = [{"id": "g1", "text": "Say hi", "gold": "hi"}]
    assert problems_of(transcription(answer="voice", items=items)) == [
        "item 'g1' field 'gold': a voice answer cannot be checked against a gold text"
    ]


def test_unknown_answer_type_names_the_choices() -> None:
    [problem] = problems_of(transcription(answer="video"))
    assert problem.startswith("field 'answer': ")
    assert "'text'" in problem and "'voice'" in problem


def test_review_rule_loads_and_its_reward_fits_the_currency() -> None:
    review = {"sample": 0.05, "not_sure": True, "reward": "0.01", "min_answers": 20}
    spec = parse_taskset_bytes(transcription(review=review), "json")
    assert spec.review == ReviewRule(
        sample=0.05, not_sure=True, reward=Decimal("0.01"), min_answers=20
    )

    assert problems_of(transcription(review={"reward": "0.001"})) == [
        "field 'review.reward': amount 0.001 has more decimals than USD allows (2)"
    ]
    [unknown] = problems_of(transcription(review={"colour": 1}))
    assert unknown == "field 'review.colour': unknown field"


def test_a_csv_set_is_answered_by_text_when_the_flags_say_so() -> None:
    data = b"id,text,gold\nt1,Read: hello world,hello world\n"

    spec = parse_taskset_bytes(data, "csv", SpecOverrides(name="read", answer="text"))

    assert (spec.answer, spec.items[0].gold) == ("text", "hello world")


def test_reviewer_level_needs_answers_and_accuracy() -> None:
    rule = ReviewRule(min_answers=10, min_gold_accuracy=0.8)

    assert is_reviewer(rule, answers=10, gold_answers=20, gold_correct=20)
    assert not is_reviewer(rule, answers=9, gold_answers=20, gold_correct=20)
    assert not is_reviewer(rule, answers=50, gold_answers=20, gold_correct=12)
