"""Pure rules of money and standing: hold periods, bonus awards, the payouts file, periods,
levels, pseudonyms, and the task-set keys ``hold_hours`` and ``bonus``."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from tasksets.bonus import BonusRule, bonus_award
from tasksets.money import available_from
from tasksets.payouts import PayoutFileError, PayoutRow, read_payouts, write_payouts
from tasksets.quality import smoothed_accuracy
from tasksets.standing import (
    EPOCH,
    PPM,
    Period,
    accuracy_ppm,
    level,
    min_control,
    period_start,
    pseudonym,
)
from tests.factories import make_spec


def test_money_is_available_after_the_hold() -> None:
    earned = datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert available_from(earned, 0) == earned
    assert available_from(earned, 36) == datetime(2026, 3, 2, 22, tzinfo=UTC)


def test_periods_start_at_utc_midnight_and_on_monday() -> None:
    sunday_late = datetime(2026, 1, 4, 23, 59, 59, tzinfo=UTC)
    assert period_start(Period.DAY, sunday_late) == date(2026, 1, 4)
    assert period_start(Period.WEEK, sunday_late) == date(2025, 12, 29)
    monday = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    assert period_start(Period.WEEK, monday) == date(2026, 1, 5)
    assert period_start(Period.ALL, monday) == EPOCH


def test_accuracy_ppm_is_the_smoothed_accuracy_rounded_down() -> None:
    for correct, answers in ((0, 0), (1, 1), (7, 9), (8000, 8200)):
        assert accuracy_ppm(correct, answers) == int(smoothed_accuracy(correct, answers) * PPM)
    assert min_control(True) == 3 and min_control(False) == 0


def test_levels_need_answers_and_accuracy() -> None:
    assert level(0, 0, 0).name == "Newcomer"
    assert level(250, 19, 20).name == "Skilled"
    assert level(250, 5, 20).name == "Regular"  # many answers, poor accuracy
    top = level(6000, 990, 1000)
    assert top.name == "Master" and top.next_step is None
    assert level(25, 0, 0).next_step == "Skilled: 200 answers at 80% accuracy"


def test_pseudonyms_depend_on_the_key() -> None:
    assert pseudonym(b"k1", 42) == pseudonym(b"k1", 42)
    assert pseudonym(b"k1", 42) != pseudonym(b"k2", 42)
    assert pseudonym(b"k1", 42).startswith("Worker ") and len(pseudonym(b"k1", 42)) == 13


def test_bonus_award_rounds_down_and_needs_both_thresholds() -> None:
    rule = BonusRule(min_gold_accuracy=0.9, min_answers=50, percent=Decimal("12.5"))
    award = bonus_award(rule, answers=60, gold_answers=40, gold_correct=40, earned_minor=123)
    assert award is not None and award.amount_minor == 15  # 15.375 rounds down
    assert award.reason.startswith("12.5% for")
    assert bonus_award(rule, answers=49, gold_answers=40, gold_correct=40, earned_minor=100) is None
    assert bonus_award(rule, answers=60, gold_answers=40, gold_correct=30, earned_minor=100) is None
    assert bonus_award(rule, answers=60, gold_answers=40, gold_correct=40, earned_minor=5) is None


def test_task_set_keys_hold_hours_and_bonus() -> None:
    bonus = {"min_gold_accuracy": 0.9, "min_answers": 50, "percent": 20}
    spec = make_spec(hold_hours=72, bonus=bonus)
    assert spec.hold_hours == 72 and spec.bonus == BonusRule(**bonus)
    assert make_spec().hold_hours == 0 and make_spec().bonus is None
    for wrong in (
        {"hold_hours": -1},
        {"bonus": {**bonus, "percentage": 20}},  # unknown keys stay an error
        {"bonus": {**bonus, "percent": 20.5}},  # a binary float, not what was written
        {"bonus": {**bonus, "percent": "0.001"}},
    ):
        with pytest.raises(ValidationError):
            make_spec(**wrong)


def test_the_payouts_file_is_formula_safe_and_reads_back() -> None:
    rows = [
        PayoutRow(7, '=HYPERLINK("http://x")', 1234, "USD", 3),
        PayoutRow(8, "Bob", 500, "USD", 3),
    ]
    out = io.StringIO(newline="")
    assert write_payouts(rows, out) == 2
    text = out.getvalue()
    assert text.startswith("\ufeffworker_id,display_name,amount,currency,batch_id\r\n")
    assert '7,"\'=HYPERLINK(""http://x"")",12.34,USD,3\r\n' in text
    assert read_payouts(io.StringIO(text)) == [
        PayoutRow(7, '=HYPERLINK("http://x")', 1234, "USD", 3),
        PayoutRow(8, "Bob", 500, "USD", 3),
    ]
    with pytest.raises(PayoutFileError, match="line 2"):
        read_payouts(
            io.StringIO("worker_id,display_name,amount,currency,batch_id\n7,x,1.234,USD,3\n")
        )
    with pytest.raises(PayoutFileError, match="line 1"):
        read_payouts(io.StringIO("id,amount\n"))
