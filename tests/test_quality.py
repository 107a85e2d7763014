"""Gold mixing, qualification, auto-suspension and dynamic overlap, in storage (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.models import Answer, Item, LedgerEntry, MembershipStatus
from storage.results import NoItem, NoItemReason, Recorded, ServedItem
from storage.store import LabelStore
from tasksets.quality import (
    QualityRules,
    WorkerRecord,
    item_posterior,
    smoothed_accuracy,
    suspension_reason,
)
from tests.conftest import Clock
from tests.factories import LABELS, make_spec
from tests.test_store import join, serve

RULES = QualityRules()


def gold_of(text: str | None) -> str:
    """The gold label make_spec gives control item ``control N``."""
    return LABELS[int((text or "").split()[-1]) % 2]


# ------------------------------------------------------------------ pure rules


def test_smoothing_keeps_one_of_one_below_certainty() -> None:
    assert smoothed_accuracy(1, 1) < 0.9
    assert smoothed_accuracy(0, 0) == pytest.approx(0.8)
    assert smoothed_accuracy(95, 100) > 0.9


def test_posterior_is_sure_of_agreement_and_unsure_of_a_split() -> None:
    label, sure = item_posterior([(0, 0.8), (0, 0.8)], 3)
    assert label == 0 and sure > 0.9
    _, split = item_posterior([(0, 0.8), (1, 0.8)], 3)
    assert split < 0.6


CAREFUL = WorkerRecord(
    gold_answers=8,
    gold_correct=7,
    recent_seconds=[4.0, 6.5, 3.2] * 7,
    recent_labels=["positive", "negative", "neutral", "negative"] * 5,
    crowd_counts={"positive": 100, "negative": 100, "neutral": 100},
)


def test_careful_worker_is_not_suspended() -> None:
    assert suspension_reason(CAREFUL, RULES) is None


def test_low_gold_accuracy_suspends() -> None:
    record = WorkerRecord(6, 1, CAREFUL.recent_seconds, CAREFUL.recent_labels, CAREFUL.crowd_counts)
    assert "control questions" in (suspension_reason(record, RULES) or "")


def test_answering_too_fast_suspends() -> None:
    record = WorkerRecord(0, 0, [0.3] * 20, CAREFUL.recent_labels, CAREFUL.crowd_counts)
    assert "too fast" in (suspension_reason(record, RULES) or "")


def test_one_label_for_everything_suspends_unless_the_crowd_agrees() -> None:
    spam = WorkerRecord(0, 0, [5.0] * 20, ["positive"] * 19 + ["neutral"], CAREFUL.crowd_counts)
    assert "“positive” for 19 of your last 20" in (suspension_reason(spam, RULES) or "")
    # A set where nearly everything really is positive: the same pattern is honest work.
    honest = WorkerRecord(0, 0, [5.0] * 20, spam.recent_labels, {"positive": 90, "neutral": 10})
    assert suspension_reason(honest, RULES) is None


# ------------------------------------------------------------------ gold mixing


async def test_gold_is_mixed_at_the_ratio_and_never_repeated(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=400, gold=150, overlap=1, gold_ratio=0.2))
    await join(store, 1)
    served_gold: list[str] = []
    total = 0
    result = await store.next_item_for(1)
    while isinstance(result, ServedItem) and total < 300:
        total += 1
        text = result.text or ""
        choice = 0
        if text.startswith("control"):
            served_gold.append(text)
            choice = LABELS.index(gold_of(text))  # a careful worker, so no suspension
        outcome = await store.record_answer(result.token, 1, choice)
        assert isinstance(outcome, Recorded)
        result = outcome.next
    assert total == 300
    assert 0.14 <= len(served_gold) / total <= 0.26
    assert len(served_gold) == len(set(served_gold))


async def test_gold_answers_do_not_fill_overlap_and_are_paid_once(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=1, gold=2, overlap=1, gold_ratio=1.0))
    for worker_id in (1, 2, 3):
        await join(store, worker_id)
        texts = []
        result = await store.next_item_for(worker_id)
        while isinstance(result, ServedItem):
            texts.append(result.text)
            outcome = await store.record_answer(result.token, worker_id, 0)
            assert isinstance(outcome, Recorded)
            result = outcome.next
        # Every worker sees both gold items; only the first gets the single regular slot.
        assert sum(1 for t in texts if (t or "").startswith("control")) == 2
    async with store.sessions() as session:
        gold_counts = list(await session.scalars(select(Item.answer_count).where(Item.is_gold)))
        paid = await session.scalar(select(func.count()).select_from(LedgerEntry))
    assert gold_counts == [3, 3]
    assert paid == 7  # 3 workers x 2 gold + 1 regular answer


async def test_gold_feedback_names_the_right_label_and_explanation(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=1, gold=1, overlap=1, gold_ratio=1.0))
    await join(store, 1)
    item = await serve(store, 1)
    assert item.text == "control 0"  # gold label "positive"
    outcome = await store.record_answer(item.token, 1, LABELS.index("negative"))
    assert isinstance(outcome, Recorded) and outcome.gold is not None
    assert not outcome.gold.correct
    assert outcome.gold.gold_label == "positive"
    assert outcome.gold.explanation == "why 0"
    assert await store.dispute(outcome.gold.answer_id, 1) is not None
    assert await store.dispute(outcome.gold.answer_id, 2) is None  # not theirs


# --------------------------------------------------------------- qualification


QUALIFYING_SET = make_spec(
    items=5, gold=6, gold_ratio=0.0, qualification={"items": 4, "min_accuracy": 0.75}
)


async def qualify(store: LabelStore, worker_id: int, right: bool) -> Recorded:
    """Answer the training items; returns the outcome of the last one."""
    result = await store.next_item_for(worker_id)
    outcome = None
    while isinstance(result, ServedItem) and (result.text or "").startswith("control"):
        truth = LABELS.index(gold_of(result.text))
        outcome = await store.record_answer(result.token, worker_id, truth if right else 2)
        assert isinstance(outcome, Recorded)
        assert outcome.gold is not None and outcome.gold.training  # the answer is shown
        if outcome.status_change is not None:
            return outcome
        result = outcome.next
    raise AssertionError(f"qualification did not end: {result}")


async def test_qualification_pass_opens_real_items(store: LabelStore) -> None:
    await store.load_taskset(QUALIFYING_SET)
    await join(store, 1)
    outcome = await qualify(store, 1, right=True)
    assert outcome.status_change is not None
    assert outcome.status_change.status == MembershipStatus.ACTIVE
    assert isinstance(outcome.next, ServedItem)
    assert (outcome.next.text or "").startswith("text")


async def test_qualification_fail_stops_the_worker_kindly(store: LabelStore) -> None:
    await store.load_taskset(QUALIFYING_SET)
    await join(store, 1)
    outcome = await qualify(store, 1, right=False)
    assert outcome.status_change is not None
    assert outcome.status_change.status == MembershipStatus.FAILED
    assert isinstance(outcome.next, NoItem)
    assert outcome.next.reason == NoItemReason.FAILED_QUALIFICATION
    assert "0 of 4" in (outcome.next.detail or "")


# ----------------------------------------------------------------- suspension


async def test_spammer_is_suspended_excluded_and_reinstatable(store: LabelStore) -> None:
    spec = make_spec(items=40, gold=10, overlap=3, gold_ratio=0.3)
    taskset_id = await store.load_taskset(spec)
    await join(store, 1)
    result = await store.next_item_for(1)
    suspended = None
    while isinstance(result, ServedItem):
        outcome = await store.record_answer(result.token, 1, 2)  # always "neutral"
        assert isinstance(outcome, Recorded)
        if outcome.status_change is not None:
            suspended = outcome.status_change
        result = outcome.next
    assert suspended is not None and suspended.status == MembershipStatus.SUSPENDED
    assert isinstance(result, NoItem) and result.reason == NoItemReason.SUSPENDED
    # Every item the spammer labeled now wants one more (trusted) answer.
    async with store.sessions() as session:
        spammed = list(
            await session.scalars(
                select(Item.needed).where(
                    Item.id.in_(select(Answer.item_id).where(Answer.worker_id == 1)),
                    Item.is_gold.is_(False),
                )
            )
        )
    assert spammed and set(spammed) == {4}  # overlap 3 + 1 replacement
    assert result.detail == suspended.reason
    [score] = await store.worker_scores(taskset_id)
    assert score.status == MembershipStatus.SUSPENDED

    assert await store.reinstate(1) == 1
    assert isinstance(await store.next_item_for(1), ServedItem)


async def test_too_fast_worker_is_suspended(db_url: str) -> None:
    from storage.engine import create_engine

    engine = create_engine(db_url)
    store = LabelStore(engine, clock=Clock(step=0.1))
    try:
        await store.load_taskset(make_spec(items=30, overlap=1))
        await join(store, 1)
        result = await store.next_item_for(1)
        answered = 0
        while isinstance(result, ServedItem):
            outcome = await store.record_answer(result.token, 1, answered % 3)
            assert isinstance(outcome, Recorded)
            answered += 1
            result = outcome.next
        assert isinstance(result, NoItem) and result.reason == NoItemReason.SUSPENDED
        assert "too fast" in (result.detail or "")
        assert answered == RULES.min_answers_for_speed
    finally:
        await store.close()


# ------------------------------------------------------------ dynamic overlap


async def label_item(store: LabelStore, worker_id: int, choice: int) -> ServedItem:
    await join(store, worker_id)
    item = await serve(store, worker_id)
    assert isinstance(await store.record_answer(item.token, worker_id, choice), Recorded)
    return item


async def needed_and_open(store: LabelStore) -> tuple[int, bool, int]:
    async with store.sessions() as session:
        row = (await session.execute(select(Item.needed, Item.open, Item.answer_count))).one()
    return row[0], row[1], row[2]


async def test_clear_item_stops_at_min_overlap(store: LabelStore) -> None:
    overlap = {"min": 2, "max": 5, "confidence": 0.9}
    await store.load_taskset(make_spec(items=1, overlap=overlap))
    await label_item(store, 1, 0)
    await label_item(store, 2, 0)
    assert await needed_and_open(store) == (2, False, 2)
    await join(store, 3)
    assert isinstance(await store.next_item_for(3), NoItem)


async def test_contested_item_goes_to_max_overlap(store: LabelStore) -> None:
    overlap = {"min": 2, "max": 5, "confidence": 0.9}
    await store.load_taskset(make_spec(items=1, overlap=overlap))
    for worker_id, choice in enumerate([0, 1, 2, 0, 1], start=1):
        await label_item(store, worker_id, choice)
    assert await needed_and_open(store) == (5, False, 5)
    await join(store, 9)
    assert isinstance(await store.next_item_for(9), NoItem)
