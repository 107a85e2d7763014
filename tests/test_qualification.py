"""The qualification rule on its own: pure numbers in, a verdict the worker reads out."""

from __future__ import annotations

from tasksets.qualification import Qualification, qualification_verdict

RULE = Qualification(items=4, min_accuracy=0.75)


def test_no_verdict_until_every_training_item_is_answered() -> None:
    assert qualification_verdict(RULE, 3, 3, out_of_items=False) is None


def test_enough_right_answers_pass_and_say_the_accuracy() -> None:
    verdict = qualification_verdict(RULE, 4, 3, out_of_items=False)
    assert verdict is not None and verdict.passed
    assert "75%" in verdict.reason


def test_too_few_right_answers_fail_and_say_what_was_needed() -> None:
    verdict = qualification_verdict(RULE, 4, 2, out_of_items=False)
    assert verdict is not None and not verdict.passed
    assert verdict.reason == "2 of 4 training questions right, 75% needed"


def test_a_set_short_of_gold_judges_on_what_was_seen() -> None:
    verdict = qualification_verdict(RULE, 2, 1, out_of_items=True)
    assert verdict is not None and not verdict.passed
    nothing_seen = qualification_verdict(RULE, 0, 0, out_of_items=True)
    assert nothing_seen is not None and nothing_seen.passed
