"""The review stream on SQLite and PostgreSQL: the reviewer level, who reviews what, what a
verdict changes, gold reviews, and reviewers working at the same moment."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from storage.models import Answer, Item, LedgerEntry, Membership, Review
from storage.results import Recorded, Rejected, Rejection, Reviewed, ServedItem
from storage.store import LabelStore
from tests.conftest import Clock
from tests.factories import make_spec
from tests.test_store import count, join, serve

# Everyone reviews from their first answer, and every answer is reviewed.
EVERYONE_REVIEWS = {"sample": 1.0, "reward": "0.01", "min_answers": 0, "min_gold_accuracy": 0.0}


async def answer(store: LabelStore, worker_id: int, choice: Any = 0) -> Recorded:
    served = await serve(store, worker_id)
    assert served.review is None, "expected an item, got a review"
    outcome = await store.record_answer(served.token, worker_id, choice)
    assert isinstance(outcome, Recorded), outcome
    return outcome


async def review_of(store: LabelStore, worker_id: int) -> ServedItem:
    served = await serve(store, worker_id)
    assert served.review is not None, f"expected a review, got item {served.text!r}"
    return served


async def review_of_item(store: LabelStore, worker_id: int, text: str) -> ServedItem:
    """The reviewer's review of an answer on the item with this text: the reviews before it in
    the queue (oldest first) are passed with ✅."""
    served = await review_of(store, worker_id)
    while served.text != text:
        outcome = await store.reviews.record_review(served.token, worker_id, True)
        assert isinstance(outcome, Reviewed) and isinstance(outcome.next, ServedItem)
        assert outcome.next.review is not None, f"no review of {text!r} for {worker_id}"
        served = outcome.next
    return served


async def membership(store: LabelStore, worker_id: int) -> Membership:
    async with store.sessions() as session:
        return (
            await session.scalars(select(Membership).where(Membership.worker_id == worker_id))
        ).one()


async def consistent(store: LabelStore) -> None:
    assert {name: n for name, n in (await store.consistency_violations()).items() if n} == {}


async def test_promoted_at_the_level_and_demoted_when_accuracy_falls(store: LabelStore) -> None:
    rule = {"min_answers": 2, "min_gold_accuracy": 0.8, "sample": 0.0}
    spec = make_spec(items=2, gold=8, overlap=1, gold_ratio=1.0, review=rule)
    await store.load_taskset(spec)
    await join(store, 1)
    gold_labels = {item.text: item.gold for item in spec.items}
    values = spec.label_values

    def right(served: ServedItem) -> int:
        return values.index(gold_labels[served.text])

    changes = []
    for wants_right in (True, True, False):
        served = await serve(store, 1)
        choice = right(served) if wants_right else (right(served) + 1) % len(values)
        outcome = await store.record_answer(served.token, 1, choice)
        assert isinstance(outcome, Recorded)
        changes.append(outcome.reviewer_change)

    # 1 of 1 right: (1+4)/(1+5) = 0.83 but one answer short; 2 of 2: 0.86, promoted; then
    # 2 of 3: 0.75, below 0.8: demoted.
    assert changes == [None, True, False]
    assert (await membership(store, 1)).reviewer is False
    path = await store.reviews.path(1, 1)
    assert path is not None and not path.reviewer and path.accuracy < path.min_accuracy


async def test_a_reviewer_never_sees_their_own_answer(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=6, overlap=2, review=EVERYONE_REVIEWS))
    await join(store, 1)
    await join(store, 2)
    for _ in range(3):
        # Promoted at once, but only their own answers wait: worker 1 labels on.
        outcome = await answer(store, 1)
        assert isinstance(outcome.next, ServedItem) and outcome.next.review is None
    assert (await membership(store, 1)).reviewer

    outcome = await answer(store, 2)  # queued too, but worker 2 reviews worker 1's three
    following = outcome.next
    reviewed = []
    while isinstance(following, ServedItem) and following.review is not None:
        async with store.sessions() as session:
            reviewed.append(
                await session.scalar(
                    select(Answer.worker_id)
                    .join(Review, Review.answer_id == Answer.id)
                    .where(Review.token == following.token)
                )
            )
        result = await store.reviews.record_review(following.token, 2, True)
        assert isinstance(result, Reviewed)
        following = result.next
    assert reviewed == [1, 1, 1]
    assert isinstance(following, ServedItem)  # worker 2's own answer never came back


async def test_two_wrong_verdicts_score_reverse_and_ask_one_more_answer(
    store: LabelStore,
) -> None:
    spec = make_spec(items=8, overlap=1, hold_hours=48, review=EVERYONE_REVIEWS)
    await store.load_taskset(spec)
    for worker_id in (1, 2, 3):
        await join(store, worker_id)
    await answer(store, 1)  # worker 1 labels "text number 0" positive

    # Worker 2 becomes a reviewer with their first answer and gets worker 1's answer.
    await answer(store, 2)
    first = await review_of(store, 2)
    assert first.review is not None and first.review.given == "positive"
    outcome = await store.reviews.record_review(first.token, 2, False, corrected=1)
    assert isinstance(outcome, Reviewed) and outcome.verdict == "Wrong → negative"
    # One ❌ decides nothing yet: the answer goes to a second reviewer.
    before = await membership(store, 1)
    assert (before.gold_answers, before.gold_correct) == (0, 0)

    await answer(store, 3)
    second = await review_of_item(store, 3, "text number 0")
    outcome = await store.reviews.record_review(second.token, 3, False, corrected=1)
    assert isinstance(outcome, Reviewed)

    after = await membership(store, 1)
    assert (after.gold_answers, after.gold_correct) == (1, 0)  # a control question missed
    async with store.sessions() as session:
        entries = (
            await session.execute(
                select(LedgerEntry.kind, LedgerEntry.amount_minor)
                .where(LedgerEntry.worker_id == 1)
                .order_by(LedgerEntry.id)
            )
        ).all()
        item = (await session.scalars(select(Item).where(Item.external_id == "t0"))).one()
    assert [tuple(entry) for entry in entries] == [("reward", 2), ("reversal", -2)]
    # One more answer wanted, and the item is handed out again at once.
    assert item.needed == 2
    assert isinstance(outcome.next, ServedItem) and outcome.next.text == "text number 0"
    rewards = await count(
        store, select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "review")
    )
    done = await count(
        store, select(func.count()).select_from(Review).where(Review.verdict.is_not(None))
    )
    assert rewards == done == 3  # every review paid once (worker 3 also passed worker 2's)
    # In aggregation, the reviewers' right label takes the wrong answer's place.
    counted = [
        (a.worker_id, a.label) for a in await store.answers_for_export(1) if a.item_id == "t0"
    ]
    assert counted == [(3, "negative")]
    given = [(a.worker_id, a.label) for a in await store.answers_for_export(1, reviewed=False)]
    assert (1, "positive") in given
    # A reviewer's verdicts are part of what /mydata sends them, and /delete keeps them.
    mine = await store.privacy.export(3)
    assert mine is not None
    assert [(r["item"], r["verdict"], r["corrected_label"]) for r in mine["reviews"]] == [
        ("t2", "correct", None),
        ("t0", "wrong", "negative"),
    ]
    assert await store.privacy.erase(3) is not None
    await consistent(store)


async def test_disagreeing_reviewers_call_a_third_and_a_verdict_is_final(
    store: LabelStore,
) -> None:
    await store.load_taskset(make_spec(items=10, overlap=1, review=EVERYONE_REVIEWS))
    for worker_id in (1, 2, 3, 4):
        await join(store, worker_id)
    await answer(store, 1)
    verdicts = {2: False, 3: True, 4: True}
    for reviewer, correct in verdicts.items():
        await answer(store, reviewer)
        review = await review_of_item(store, reviewer, "text number 0")
        corrected = None if correct else 1
        outcome = await store.reviews.record_review(review.token, reviewer, correct, corrected)
        assert isinstance(outcome, Reviewed)
        repeat = await store.reviews.record_review(review.token, reviewer, correct, corrected)
        assert isinstance(repeat, Rejected) and repeat.reason == Rejection.DUPLICATE
    # ❌ then ✅: a third reviewer decided for the answer, so worker 1 lost nothing.
    standing = await membership(store, 1)
    assert (standing.gold_answers, standing.gold_correct) == (0, 0)
    state = await store.reviews.state(1)
    assert state.pairs == 2 and state.agreement == 0.5
    [worker_1] = [row for row in state.acceptance if row.worker_id == 1]
    assert (worker_1.accepted, worker_1.reviewed) == (2, 3)
    await consistent(store)


async def test_gold_reviews_score_the_reviewer(store: LabelStore) -> None:
    review_rule = {**EVERYONE_REVIEWS, "min_gold_accuracy": 0.5}
    spec = make_spec(items=3, gold=2, overlap=1, gold_ratio=1.0, review=review_rule)
    await store.load_taskset(spec)
    await join(store, 1)
    await join(store, 2)
    for _ in range(3):  # two gold items (labeled "neutral", both wrong), then t0
        await answer(store, 1, 2)
    await answer(store, 2, 2)  # a gold item, wrong too: worker 2's own
    before = await membership(store, 2)

    gold = await review_of(store, 2)  # with the gold ratio at 1, a gold review
    assert gold.review is not None and gold.review.given == "neutral"
    assert gold.text in {"control 0", "control 1"}
    outcome = await store.reviews.record_review(gold.token, 2, True)  # says "correct": wrong
    assert isinstance(outcome, Reviewed) and outcome.gold is False
    after = await membership(store, 2)
    assert (after.gold_answers - before.gold_answers, after.gold_correct) == (
        1,
        before.gold_correct,
    )

    gold = await review_of(store, 2)
    outcome = await store.reviews.record_review(gold.token, 2, False, corrected=0)
    assert isinstance(outcome, Reviewed) and outcome.gold is True
    final = await membership(store, 2)
    assert final.gold_correct == before.gold_correct + 1
    # Both of worker 1's gold answers were reviewed, and nothing else of theirs was settled.
    state = await store.reviews.state(1)
    assert [(r.worker_id, r.gold_reviews, r.gold_right) for r in state.reviewers] == [(2, 2, 1)]
    await consistent(store)


async def test_a_corrected_gold_label_judges_the_gold_reviews_of_its_item_again(
    store: LabelStore,
) -> None:
    rule = {**EVERYONE_REVIEWS, "min_gold_accuracy": 0.5}
    await store.load_taskset(make_spec(items=3, gold=2, overlap=1, gold_ratio=1.0, review=rule))
    await join(store, 1)
    await join(store, 2)
    for _ in range(3):  # two gold items labeled "neutral" (both wrong), then t0
        await answer(store, 1, 2)
    own = await serve(store, 2)  # a gold item, wrong too
    await store.record_answer(own.token, 2, 2)
    said_correct = {}  # per gold item: the reviewer's verdict on worker 1's "neutral"
    for correct in (True, False):  # one gold review judged wrong, one right
        review = await review_of(store, 2)
        said_correct[review.text] = correct
        await store.reviews.record_review(review.token, 2, correct, None if correct else 0)
    before = await membership(store, 2)
    assert (before.gold_answers, before.gold_correct) == (3, 1)

    async with store.sessions() as session:
        disputed = await session.scalar(
            select(Answer.id)
            .join(Item, Item.id == Answer.item_id)
            .where(Answer.worker_id == 1, Item.external_id == "g0")
        )
    dispute_id = await store.dispute(disputed, 1)
    assert dispute_id is not None
    decision = await store.coordination.decide_dispute(dispute_id, accept=True, coordinator_id=9)
    assert decision is not None

    # "control 0" is "neutral" now: a ✅ on worker 1's "neutral" there was right after all,
    # a ❌ wrong. The control answers that reviews added stay counted.
    reviews_right = int(said_correct["control 0"]) + int(not said_correct["control 1"])
    after = await membership(store, 2)
    assert after.gold_answers == 3
    assert after.gold_correct == reviews_right + int(own.text == "control 0")
    state = await store.reviews.state(1)
    assert [(r.worker_id, r.gold_reviews, r.gold_right) for r in state.reviewers] == [
        (2, 2, reviews_right)
    ]
    await consistent(store)


async def test_a_review_set_aside_for_its_reviewer_goes_to_another(store: LabelStore) -> None:
    rule = {**EVERYONE_REVIEWS, "min_gold_accuracy": 0.5}
    spec = make_spec(items=6, gold=1, overlap=1, gold_ratio=0.0, review=rule)
    taskset_id = await store.load_taskset(spec)
    for worker_id in (1, 2, 3):
        await join(store, worker_id)
    await answer(store, 1)
    outcome = await answer(store, 2)  # worker 2 is shown worker 1's answer...
    assert isinstance(outcome.next, ServedItem) and outcome.next.review is not None
    assert await store.reviews.set_aside(outcome.next.token) is not None  # ... and cannot see it
    assert await store.reviews.set_aside(outcome.next.token) is None  # once

    following = await serve(store, 2)  # not that review again: worker 1 has no other answer
    assert following.review is None
    assert (await store.reviews.state(taskset_id)).waiting == 2  # worker 1's, worker 2's
    await answer(store, 3)
    # In its place a review of the same answer waits, at the back of the queue, for another.
    review = await review_of_item(store, 3, outcome.next.text or "")
    async with store.sessions() as session:
        reviewed = await session.scalar(
            select(Answer.worker_id)
            .join(Review, Review.answer_id == Answer.id)
            .where(Review.token == review.token)
        )
    assert reviewed == 1
    outcome = await store.reviews.record_review(review.token, 3, True)
    assert isinstance(outcome, Reviewed)
    await consistent(store)


async def test_concurrent_reviewers_each_get_a_review_of_their_own(
    store: LabelStore, clock: Clock
) -> None:
    reviewers = list(range(10, 18))
    await store.load_taskset(
        make_spec(items=len(reviewers) * 4, overlap=1, review=EVERYONE_REVIEWS)
    )
    for reviewer in reviewers:
        await join(store, reviewer)
        # Promoted; a skip is never reviewed, so nothing waits yet and an item is next.
        await answer(store, reviewer, "skip")
    clock.advance(minutes=11)
    await store.expire_leases()  # their items go back: nobody holds a lease now
    await join(store, 1)
    for _ in range(len(reviewers)):
        await answer(store, 1)

    # Every reviewer asks at the same moment: each must get a different answer to review.
    served = await asyncio.gather(*(store.next_item_for(r) for r in reviewers))
    tokens = {}
    for reviewer, result in zip(reviewers, served, strict=True):
        assert isinstance(result, ServedItem) and result.review is not None
        tokens[reviewer] = result.token
    texts = [result.text for result in served if isinstance(result, ServedItem)]
    assert len(set(texts)) == len(texts), "two reviewers got the same answer"

    outcomes = await asyncio.gather(
        *(store.reviews.record_review(token, r, True) for r, token in tokens.items())
    )
    assert all(isinstance(outcome, Reviewed) for outcome in outcomes)
    state = await store.reviews.state(1)
    assert state.done == len(reviewers)
    await consistent(store)
