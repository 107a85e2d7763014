"""Typed answers at the storage level, on both databases: one message is one answer even when
two processes take its redelivery at once; label rules leave text answers alone."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import func, select

from storage.engine import create_engine
from storage.models import Answer, MembershipStatus, Tally
from storage.results import Edited, EditRefusal, Recorded, Rejected, Rejection, ServedItem
from storage.store import LabelStore
from tasksets.replies import Reply
from tasksets.standing import accuracy_ppm
from tests.conftest import Clock
from tests.test_e2e_replies import reply_spec


async def test_one_message_delivered_to_two_processes_at_once_is_one_answer(
    db_url: str, clock: Clock
) -> None:
    first = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(1))
    second = LabelStore(create_engine(db_url), clock=clock, rng=random.Random(2))
    try:
        taskset_id = await first.load_taskset(reply_spec(items=4, overlap=1))
        await first.join(7, "Ann", taskset_id=taskset_id)
        served = await first.next_item_for(7)
        assert isinstance(served, ServedItem)

        for round_ in range(3):  # message ids 100, 101, 102: each taken by both at once
            outcomes = await asyncio.gather(
                first.record_reply(7, 100 + round_, Reply(text=f"answer {round_}")),
                second.record_reply(7, 100 + round_, Reply(text=f"answer {round_}")),
            )
            recorded = [o for o in outcomes if isinstance(o, Recorded)]
            repeated = [o for o in outcomes if isinstance(o, Rejected)]
            assert len(recorded) == 1 and len(repeated) == 1
            assert repeated[0].reason == Rejection.DUPLICATE

        async with first.sessions() as session:
            rows = (await session.execute(select(Answer.item_id, Answer.text))).all()
            assert len(rows) == 3 and len({item for item, _ in rows}) == 3
            assert await session.scalar(select(func.count()).select_from(Answer)) == 3
        assert not any((await first.consistency_violations()).values())
    finally:
        await first.close()
        await second.close()


async def test_the_same_text_every_time_is_no_dominant_label(store: LabelStore) -> None:
    """The dominant-label rule reads labels; typed answers have none, so a worker who types the
    same short answer to many items is judged by gold and speed only."""
    taskset_id = await store.load_taskset(reply_spec(items=45, overlap=1))
    await store.join(8, "Bo", taskset_id=taskset_id)
    assert isinstance(await store.next_item_for(8), ServedItem)
    for message_id in range(1, 41):
        outcome = await store.record_reply(8, message_id, Reply(text="yes"))
        assert isinstance(outcome, Recorded) and outcome.status_change is None
    scores = await store.worker_scores(taskset_id)
    assert [(s.worker_id, s.status, s.answers) for s in scores] == [
        (8, MembershipStatus.ACTIVE, 40)
    ]


async def test_an_answer_a_reviewer_took_can_no_longer_be_edited(store: LabelStore) -> None:
    rule = {"text": 1.0, "min_answers": 0, "min_gold_accuracy": 0.0}
    taskset_id = await store.load_taskset(reply_spec(items=4, overlap=1, review=rule))
    for worker in (1, 2):
        await store.join(worker, f"Worker {worker}", taskset_id=taskset_id)
    assert isinstance(await store.next_item_for(1), ServedItem)
    assert isinstance(await store.record_reply(1, 10, Reply(text="teh cat")), Recorded)
    assert isinstance(await store.record_reply(1, 11, Reply(text="a bird")), Recorded)

    assert await store.edit_reply(1, 10, "the cat") == Edited("the cat")
    assert isinstance(await store.next_item_for(2), ServedItem)
    reviewer = await store.record_reply(2, 20, Reply(text="all is well"))  # now a reviewer
    assert isinstance(reviewer, Recorded)
    review = reviewer.next  # worker 2 now reads the answer to message 10
    assert isinstance(review, ServedItem) and review.review is not None
    assert review.review.given == "the cat"

    assert await store.edit_reply(1, 10, "the cat sat") == EditRefusal.REVIEWED
    assert await store.edit_reply(1, 11, "a bird in the hand") == Edited("a bird in the hand")
    async with store.sessions() as session:
        texts = await session.scalars(select(Answer.text).order_by(Answer.id))
        assert list(texts) == ["the cat", "a bird in the hand", "all is well"]


async def test_accepting_a_dispute_on_typed_gold_makes_the_text_gold_and_regrades(
    store: LabelStore,
) -> None:
    """The gold text was wrong ("the quick brown fox" where the item says "the quick red fox"):
    accepting the dispute of who typed it right makes their text the gold, and each answer to
    that item is judged again by word error rate, in standings and on the boards."""
    qualifying = {"min_gold_answers": 50}
    taskset_id = await store.load_taskset(
        reply_spec(items=1, gold=1, gold_ratio=1.0, quality=qualifying)
    )
    typed = {1: "the quick red fox", 2: "The quick brown fox!"}
    answers = {}
    for worker_id, text in typed.items():
        await store.join(worker_id, f"W{worker_id}", taskset_id=taskset_id)
        served = await store.next_item_for(worker_id)
        assert isinstance(served, ServedItem) and served.text == "Type: the quick brown fox"
        outcome = await store.record_reply(worker_id, 50 + worker_id, Reply(text=text))
        assert isinstance(outcome, Recorded) and outcome.gold is not None
        answers[worker_id] = outcome.gold.answer_id
    before = {s.worker_id: s.gold_correct for s in await store.worker_scores(taskset_id)}
    assert before == {1: 0, 2: 1}
    dispute = await store.dispute(answers[1], 1)
    assert dispute is not None

    decision = await store.coordination.decide_dispute(dispute, accept=True, coordinator_id=9)

    assert decision is not None and decision.gold == "the quick red fox"
    assert decision.rescored == 2
    after = {s.worker_id: s.gold_correct for s in await store.worker_scores(taskset_id)}
    assert after == {1: 1, 2: 0}
    async with store.sessions() as session:
        tallies = await session.execute(
            select(Tally.worker_id, Tally.scope, Tally.gold_correct, Tally.accuracy_ppm)
        )
        assert sorted(tallies) == [
            (1, 0, 1, accuracy_ppm(1, 1)),
            (1, 0, 1, accuracy_ppm(1, 1)),
            (1, 0, 1, accuracy_ppm(1, 1)),
            (1, taskset_id, 1, accuracy_ppm(1, 1)),
            (1, taskset_id, 1, accuracy_ppm(1, 1)),
            (1, taskset_id, 1, accuracy_ppm(1, 1)),
            (2, 0, 0, accuracy_ppm(0, 1)),
            (2, 0, 0, accuracy_ppm(0, 1)),
            (2, 0, 0, accuracy_ppm(0, 1)),
            (2, taskset_id, 0, accuracy_ppm(0, 1)),
            (2, taskset_id, 0, accuracy_ppm(0, 1)),
            (2, taskset_id, 0, accuracy_ppm(0, 1)),
        ]  # day, week and all time, in the set and in all sets
    assert not any((await store.consistency_violations()).values())
