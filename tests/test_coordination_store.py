"""The coordinators' units of work (storage/coordination.py, storage/broadcasts.py), on SQLite
and on PostgreSQL: drafts, publishing, status, overviews, suspensions, disputes, the broadcast
queue's claims across a crash, and completion."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import func, select, update

from storage.broadcasts import Delivery
from storage.models import (
    BroadcastRecipient,
    DeliveryState,
    Dispute,
    DisputeStatus,
    Item,
    Membership,
    MembershipStatus,
    TaskSet,
    TaskSetStatus,
)
from storage.results import NoItem, NoItemReason, Recorded, ServedItem
from storage.store import LabelStore
from tasksets.quality import smoothed_accuracy
from tasksets.standing import Period
from tests.conftest import Clock
from tests.factories import LABELS, make_spec


async def join(store: LabelStore, worker_id: int, taskset_id: int | None = None) -> None:
    assert await store.join(worker_id, f"Worker {worker_id}", taskset_id=taskset_id) is not None


async def scalar(store: LabelStore, query: Any) -> Any:
    async with store.sessions() as session:
        return await session.scalar(query)


async def test_a_draft_is_not_served_until_published(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=3), status=TaskSetStatus.DRAFT)
    assert await store.join(1, "Ann", taskset_id=taskset_id) is None
    assert await store.active_tasksets() == []

    published = await store.coordination.publish(taskset_id, chat_id=99)

    assert published is not None and published.view.name == "sentiment"
    await join(store, 1, taskset_id)
    assert isinstance(await store.next_item_for(1), ServedItem)
    assert await store.coordination.publish(taskset_id, chat_id=99) is None  # once only


async def test_publishing_queues_every_active_worker_who_wants_messages(
    store: LabelStore,
) -> None:
    old = await store.load_taskset(make_spec("old", items=2))
    for worker_id in (1, 2, 3, 4):
        await join(store, worker_id, old)
    await store.mark_inactive(2)  # blocked the bot
    assert await store.standing.set_notify(3, False)  # /settings: no new-task messages
    draft = await store.load_taskset(make_spec("new", items=2), status=TaskSetStatus.DRAFT)

    published = await store.coordination.publish(draft, chat_id=99)

    assert published is not None and published.recipients == 2
    async with store.sessions() as session:
        queued = set(await session.scalars(select(BroadcastRecipient.worker_id)))
    assert queued == {1, 4}


async def test_cancelling_a_draft_stores_nothing(store: LabelStore) -> None:
    draft = await store.load_taskset(make_spec(items=4), status=TaskSetStatus.DRAFT)
    active = await store.load_taskset(make_spec("live", items=4))

    assert await store.coordination.discard_draft(draft) == "sentiment"
    assert await store.coordination.discard_draft(active) is None  # not a draft: kept

    assert await scalar(store, select(func.count()).select_from(TaskSet)) == 1
    assert await scalar(store, select(func.count()).where(Item.taskset_id == draft)) == 0
    # The name is free again for the corrected upload.
    assert await store.load_taskset(make_spec(items=2), status=TaskSetStatus.DRAFT)


async def test_pause_resume_and_close_follow_their_transitions(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=3))
    await join(store, 1)
    coordination = store.coordination

    assert await coordination.change_status(taskset_id, "pause") == TaskSetStatus.PAUSED
    paused = await store.next_item_for(1)
    assert isinstance(paused, NoItem) and paused.reason == NoItemReason.NOT_ACTIVE
    assert await coordination.change_status(taskset_id, "pause") is None
    assert await coordination.change_status(taskset_id, "resume") == TaskSetStatus.ACTIVE
    assert isinstance(await store.next_item_for(1), ServedItem)
    assert await coordination.change_status(taskset_id, "close") == TaskSetStatus.CLOSED
    draft = await store.load_taskset(make_spec("d", items=1), status=TaskSetStatus.DRAFT)
    assert await coordination.change_status(draft, "resume") is None  # a draft is published


async def test_a_lease_on_a_paused_set_still_records_the_answer(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=3, overlap=1))
    await join(store, 1)
    item = await store.next_item_for(1)
    assert isinstance(item, ServedItem)
    await store.coordination.change_status(taskset_id, "pause")

    outcome = await store.record_answer(item.token, 1, 0)

    assert isinstance(outcome, Recorded)
    assert isinstance(outcome.next, NoItem) and outcome.next.reason == NoItemReason.NOT_ACTIVE
    [overview] = await store.coordination.overview(taskset_id)
    assert overview.answers == 1


async def test_overview_counts_progress_pace_and_eta(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=4, overlap=2, gold=1))
    for worker_id in (1, 2):
        await join(store, worker_id)
        result = await store.next_item_for(worker_id)
        for _ in range(2):
            assert isinstance(result, ServedItem)
            outcome = await store.record_answer(result.token, worker_id, 0)
            assert isinstance(outcome, Recorded)
            result = outcome.next

    [overview] = await store.coordination.overview()

    assert (overview.taskset_id, overview.items, overview.gold_items) == (taskset_id, 4, 1)
    assert (overview.answers, overview.workers, overview.workers_last_hour) == (4, 2, 2)
    assert overview.items_done == 2 and overview.remaining_answers == 4
    assert overview.answers_last_hour == 4
    assert overview.eta is not None and overview.eta.total_seconds() == 3600


async def test_suspending_by_hand_stops_items_and_reinstating_restores_them(
    store: LabelStore,
) -> None:
    taskset_id = await store.load_taskset(make_spec(items=4, overlap=1))
    await join(store, 1)
    leased = await store.next_item_for(1)
    assert isinstance(leased, ServedItem)

    suspended = await store.coordination.suspend(taskset_id, 1, "copied answers")

    assert suspended is not None and suspended.reason == "copied answers"
    result = await store.next_item_for(1)
    assert isinstance(result, NoItem) and result.reason == NoItemReason.SUSPENDED
    assert result.detail == "copied answers"
    # Their item went back to the pool at once.
    assert await scalar(store, select(func.sum(Item.in_flight))) == 0
    assert await store.coordination.suspend(taskset_id, 1, "again") is None
    report = await store.coordination.workers(taskset_id)
    assert [s.worker_id for s in report.suspended] == [1] and report.best == []

    assert await store.coordination.reinstate(taskset_id, 1) is not None
    assert await store.coordination.reinstate(taskset_id, 1) is None
    assert isinstance(await store.next_item_for(1), ServedItem)


async def answer_gold(store: LabelStore, worker_id: int, choose: dict[str, int]) -> dict[str, int]:
    """The worker answers every gold item they are served (``choose`` maps an item text to a
    label index, default 0) until none is left; returns answer ids by item text."""
    answers: dict[str, int] = {}
    result = await store.next_item_for(worker_id)
    while isinstance(result, ServedItem):
        text = result.text or ""
        outcome = await store.record_answer(result.token, worker_id, choose.get(text, 0))
        assert isinstance(outcome, Recorded)
        if outcome.gold is not None:
            answers[text] = outcome.gold.answer_id
        result = outcome.next
    return answers


async def test_accepting_a_dispute_corrects_gold_and_reinstates_the_worker(
    store: LabelStore,
) -> None:
    # Every item is gold; three gold answers judge a worker; 0.6 smoothed accuracy to stay.
    quality = {"min_gold_answers": 3, "min_gold_accuracy": 0.6, "min_median_seconds": 0}
    taskset_id = await store.load_taskset(
        make_spec(items=1, gold=3, gold_ratio=1.0, quality=quality)
    )
    await join(store, 1)
    await join(store, 2)
    # Gold labels: control 0 positive, 1 negative, 2 positive. Worker 1 says "neutral" to all
    # (0 of 3: suspended); worker 2 gets them all right.
    neutral = LABELS.index("neutral")
    wrong = await answer_gold(store, 1, {f"control {i}": neutral for i in range(3)})
    right = {"control 0": 0, "control 1": 1, "control 2": 0}
    await answer_gold(store, 2, right)
    membership = await scalar(store, select(Membership).where(Membership.worker_id == 1))
    assert membership.status == MembershipStatus.SUSPENDED
    first = await store.dispute(wrong["control 0"], 1)
    assert first is not None and await store.set_dispute_reason(first, 1, "clearly neutral")
    case = await store.coordination.next_dispute(taskset_id)
    assert case is not None and case.dispute_id == first
    assert (case.gold, case.answer, case.reason) == ("positive", "neutral", "clearly neutral")

    decision = await store.coordination.decide_dispute(first, accept=True, coordinator_id=9)

    assert decision is not None and decision.accepted and decision.gold == "neutral"
    assert decision.reinstated == [1] and decision.suspended == [] and decision.rescored == 2
    assert await scalar(store, select(Item.gold_label).where(Item.text == "control 0")) == (
        "neutral"
    )
    scores = {s.worker_id: s for s in await store.worker_scores(taskset_id)}
    assert (scores[1].gold_correct, scores[1].gold_answers) == (1, 3)
    assert (scores[2].gold_correct, scores[2].gold_answers) == (2, 3)
    assert scores[1].status == MembershipStatus.ACTIVE
    # The boards read the corrected score too: worker 1 has 1 of 3 right, worker 2 has 2.
    for scope, period in itertools.product((taskset_id, 0), Period):
        board = await store.standing.board(scope, period, 1)
        accuracy = {row.worker_id: row.accuracy for row in board.rows}
        assert accuracy == {1: smoothed_accuracy(1, 3), 2: smoothed_accuracy(2, 3)}, period
    violations = await store.consistency_violations()
    assert violations == dict.fromkeys(violations, 0)
    # Decided once: a second tap changes nothing.
    assert await store.coordination.decide_dispute(first, accept=False, coordinator_id=9) is None
    assert await store.coordination.next_dispute(taskset_id) is None


async def test_a_correction_suspends_who_now_falls_below_and_rejecting_keeps_gold(
    store: LabelStore,
) -> None:
    # 3 of 3 right is 0.875 smoothed, 2 of 3 is 0.75, 1 of 3 is 0.625: below 0.7.
    quality = {"min_gold_answers": 3, "min_gold_accuracy": 0.7, "min_median_seconds": 0}
    taskset_id = await store.load_taskset(
        make_spec(items=1, gold=3, gold_ratio=1.0, quality=quality)
    )
    for worker_id in (1, 2, 3):
        await join(store, worker_id)
    negative, neutral = LABELS.index("negative"), LABELS.index("neutral")
    # Gold: control 0 positive, 1 negative, 2 positive (to be corrected to neutral).
    ones = await answer_gold(store, 1, {"control 1": negative, "control 2": neutral})  # 2 of 3
    twos = await answer_gold(store, 2, {"control 1": negative})  # 3 of 3
    await answer_gold(store, 3, {"control 1": neutral})  # 2 of 3, right on control 2
    rejected = await store.dispute(twos["control 0"], 2)
    accepted = await store.dispute(ones["control 2"], 1)
    assert rejected is not None and accepted is not None

    no = await store.coordination.decide_dispute(rejected, accept=False, coordinator_id=9)
    yes = await store.coordination.decide_dispute(accepted, accept=True, coordinator_id=9)

    assert no is not None and not no.accepted and no.gold == "positive"
    assert yes is not None and yes.gold == "neutral" and yes.rescored == 3
    assert yes.reinstated == []
    [(worker_id, reason)] = yes.suspended
    assert worker_id == 3 and "62%" in reason
    result = await store.next_item_for(3)
    assert isinstance(result, NoItem) and result.reason == NoItemReason.SUSPENDED
    scores = {
        s.worker_id: (s.gold_correct, s.status) for s in await store.worker_scores(taskset_id)
    }
    assert scores == {
        1: (3, MembershipStatus.ACTIVE),
        2: (2, MembershipStatus.ACTIVE),
        3: (1, MembershipStatus.SUSPENDED),
    }
    async with store.sessions() as session:
        decided = dict((await session.execute(select(Dispute.id, Dispute.status))).all())
    assert decided == {rejected: DisputeStatus.REJECTED, accepted: DisputeStatus.ACCEPTED}
    assert await scalar(store, select(Item.gold_label).where(Item.text == "control 0")) == (
        "positive"
    )


async def test_a_correction_keeps_control_answers_counted_outside_gold_items(
    store: LabelStore,
) -> None:
    """A worker's standing also counts control answers that are not answers to gold items (an
    answer reviews found wrong, a reviewer's gold review): a correction moves the score by
    the answers it regrades and leaves those counted."""
    quality = {"min_gold_answers": 50}
    taskset_id = await store.load_taskset(
        make_spec(items=1, gold=3, gold_ratio=1.0, quality=quality)
    )
    await join(store, 1)
    neutral = LABELS.index("neutral")
    wrong = await answer_gold(store, 1, {"control 0": neutral, "control 1": 1})
    async with store.sessions.begin() as session:  # two controls missed in reviews
        await session.execute(
            update(Membership)
            .where(Membership.worker_id == 1)
            .values(gold_answers=Membership.gold_answers + 2)
        )
    dispute = await store.dispute(wrong["control 0"], 1)
    assert dispute is not None

    await store.coordination.decide_dispute(dispute, accept=True, coordinator_id=9)

    [score] = await store.worker_scores(taskset_id)
    assert (score.gold_correct, score.gold_answers) == (3, 5)


async def test_a_correction_lets_in_who_failed_the_qualification_on_that_item(
    store: LabelStore,
) -> None:
    # Two training items, both needed: control 0 (gold positive) and control 1 (negative).
    qualification = {"items": 2, "min_accuracy": 1.0}
    taskset_id = await store.load_taskset(
        make_spec(items=2, gold=2, qualification=qualification, quality={"min_gold_answers": 50})
    )
    await join(store, 1)
    neutral = LABELS.index("neutral")
    wrong = await answer_gold(store, 1, {"control 0": neutral, "control 1": 1})
    failed = await store.next_item_for(1)
    assert isinstance(failed, NoItem) and failed.reason == NoItemReason.FAILED_QUALIFICATION
    dispute = await store.dispute(wrong["control 0"], 1)
    assert dispute is not None

    decision = await store.coordination.decide_dispute(dispute, accept=True, coordinator_id=9)

    assert decision is not None and decision.reinstated == [1]
    served = await store.next_item_for(1)
    assert isinstance(served, ServedItem) and served.text is not None
    assert served.text.startswith("text number")
    [score] = await store.worker_scores(taskset_id)
    assert (score.status, score.gold_correct, score.gold_answers) == (
        MembershipStatus.ACTIVE,
        2,
        2,
    )


async def test_the_broadcast_queue_tells_nobody_twice_across_a_crash(
    store: LabelStore, clock: Clock
) -> None:
    old = await store.load_taskset(make_spec("old", items=1))
    for worker_id in range(1, 7):
        await join(store, worker_id, old)
    draft = await store.load_taskset(make_spec("new", items=1), status=TaskSetStatus.DRAFT)
    published = await store.coordination.publish(draft, chat_id=99)
    assert published is not None and published.recipients == 6
    queue = store.broadcasts
    broadcast = published.broadcast_id
    told: list[int] = []

    first = await queue.take(broadcast, "runner-a")
    assert first is not None and first.total == 6
    claim = await queue.advance(broadcast, "runner-a", None)
    for _ in range(2):  # two delivered, the third claimed when runner-a dies mid-send
        assert claim.worker_id is not None
        told.append(claim.worker_id)
        claim = await queue.advance(
            broadcast, "runner-a", Delivery(claim.worker_id, DeliveryState.SENT)
        )
    in_flight = claim.worker_id
    assert in_flight is not None

    assert await queue.take(broadcast, "runner-b") is None  # runner-a's lease still holds
    clock.advance(minutes=5)
    assert await queue.take(broadcast, "runner-b") is not None
    # runner-a wakes up late: its lease is gone, so it stops.
    assert (await queue.advance(broadcast, "runner-a", None)).lost
    claim = await queue.advance(broadcast, "runner-b", None)
    while claim.worker_id is not None:
        told.append(claim.worker_id)
        state = DeliveryState.BLOCKED if claim.worker_id == 6 else DeliveryState.SENT
        claim = await queue.advance(broadcast, "runner-b", Delivery(claim.worker_id, state))
    assert await queue.finish(broadcast, "runner-b")

    assert in_flight not in told and len(told) == len(set(told)) == 5
    progress = await queue.progress(broadcast)
    assert (progress.sent, progress.blocked, progress.failed, progress.pending) == (4, 1, 1, 0)
    assert progress.finished and await queue.unfinished() == []


async def test_a_released_broadcast_is_resumed_at_once(store: LabelStore) -> None:
    old = await store.load_taskset(make_spec("old", items=1))
    for worker_id in (1, 2, 3):
        await join(store, worker_id, old)
    draft = await store.load_taskset(make_spec("new", items=1), status=TaskSetStatus.DRAFT)
    published = await store.coordination.publish(draft, chat_id=99)
    assert published is not None
    queue, broadcast = store.broadcasts, published.broadcast_id
    assert await queue.take(broadcast, "a") is not None
    claim = await queue.advance(broadcast, "a", None)
    assert claim.worker_id is not None
    done = Delivery(claim.worker_id, DeliveryState.SENT)
    assert (await queue.advance(broadcast, "a", done, claim_next=False)).worker_id is None
    await queue.release(broadcast, "a")

    assert await queue.take(broadcast, "b") is not None
    rest = []
    claim = await queue.advance(broadcast, "b", None)
    while claim.worker_id is not None:
        rest.append(claim.worker_id)
        claim = await queue.advance(broadcast, "b", Delivery(claim.worker_id, DeliveryState.SENT))
    assert sorted([done.worker_id, *rest]) == [1, 2, 3]


async def test_a_completed_set_is_reported_once(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=2, overlap=1))
    await store.load_taskset(make_spec("untouched", items=2, overlap=1))
    await join(store, 1, taskset_id)
    assert await store.coordination.newly_completed() == []
    result = await store.next_item_for(1)
    while isinstance(result, ServedItem):
        outcome = await store.record_answer(result.token, 1, 0)
        assert isinstance(outcome, Recorded)
        result = outcome.next

    [completed] = await store.coordination.newly_completed()

    assert (completed.view.id, completed.items, completed.answers) == (taskset_id, 2, 2)
    assert await store.coordination.newly_completed() == []


async def test_stats_count_labels_unsure_answers_and_the_hours(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=3, overlap=2))
    for worker_id, choice in ((1, 0), (2, "unsure")):
        await join(store, worker_id)
        result = await store.next_item_for(worker_id)
        while isinstance(result, ServedItem):
            outcome = await store.record_answer(result.token, worker_id, choice)  # type: ignore[arg-type]
            assert isinstance(outcome, Recorded)
            result = outcome.next

    stats = await store.coordination.stats(taskset_id)
    unsure = await store.coordination.unsure_items(taskset_id)

    assert stats is not None
    assert stats.labels == [("positive", 3), ("negative", 0), ("neutral", 0)]
    assert (stats.unsure, stats.open_items, stats.needed_answers) == (3, 3, 6)
    assert sum(count for _, count in stats.hourly) == 3
    assert {u.item_id for u in unsure} == {"t0", "t1", "t2"} and unsure[0].count == 1
    assert await store.coordination.stats(taskset_id + 100) is None


async def test_a_suspension_by_hand_reverses_pending_money_and_reinstating_restores_it(
    store: LabelStore,
) -> None:
    taskset_id = await store.load_taskset(make_spec(items=4, overlap=1, hold_hours=24))
    await join(store, 1)
    for _ in range(2):
        served = await store.next_item_for(1)
        assert isinstance(served, ServedItem)
        assert isinstance(await store.record_answer(served.token, 1, 0), Recorded)
    [before] = await store.ledger.balances(1)
    assert before.pending_minor == 4

    assert await store.coordination.suspend(taskset_id, 1, "copied answers") is not None
    [suspended] = await store.ledger.balances(1)
    assert await store.coordination.reinstate(taskset_id, 1) is not None
    [after] = await store.ledger.balances(1)

    assert suspended.pending_minor == 0
    assert after.pending_minor == 4


async def test_closing_a_set_grants_its_accuracy_bonus_once(store: LabelStore) -> None:
    bonus = {"min_gold_accuracy": 0.5, "min_answers": 2, "percent": 50}
    taskset_id = await store.load_taskset(make_spec(items=4, overlap=1, reward="0.10", bonus=bonus))
    await join(store, 1)
    served = await store.next_item_for(1)
    while isinstance(served, ServedItem):
        outcome = await store.record_answer(served.token, 1, 0)
        assert isinstance(outcome, Recorded)
        served = outcome.next

    assert await store.coordination.change_status(taskset_id, "close") == TaskSetStatus.CLOSED
    assert await store.coordination.change_status(taskset_id, "resume") == TaskSetStatus.ACTIVE
    assert await store.coordination.change_status(taskset_id, "close") == TaskSetStatus.CLOSED

    [balance] = await store.ledger.balances(1)
    assert balance.available_minor == 40 + 20  # four answers of 0.10, and half of that once
