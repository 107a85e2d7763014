"""Undo at the storage level, on both databases: one transaction takes back everything the
answer moved (item counters, standing, tallies and rank buckets, money as a reversal), the item
is leased to the worker again under a new token, and the consistency checks hold throughout."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select, update

from storage.exports import export_taskset
from storage.ledger import Balance
from storage.models import (
    Answer,
    Item,
    LedgerAdjustment,
    LedgerEntry,
    LedgerKind,
    Review,
    ReviewVerdict,
)
from storage.results import (
    Recorded,
    Rejected,
    Rejection,
    ServedItem,
    Undone,
    UndoRefusal,
    UndoRefused,
)
from storage.store import LabelStore
from tests.conftest import Clock
from tests.factories import make_spec
from tests.test_store import join, serve


async def consistent(store: LabelStore) -> None:
    violations = await store.consistency_violations()
    assert violations == dict.fromkeys(violations, 0)


async def answer(store: LabelStore, worker: int, item: ServedItem, choice: object) -> Recorded:
    outcome = await store.record_answer(item.token, worker, choice)  # type: ignore[arg-type]
    assert isinstance(outcome, Recorded), outcome
    return outcome


async def undo(store: LabelStore, worker: int, outcome: Recorded, token: str) -> ServedItem:
    undone = await store.undo_answer(outcome.answer_id, token, worker)
    assert isinstance(undone, Undone), undone
    return undone.reopened


async def balance(store: LabelStore, worker: int) -> list[Balance]:
    return await store.ledger.balances(worker)


async def test_undo_takes_everything_back_and_the_next_answer_counts_once(
    store: LabelStore,
) -> None:
    await store.load_taskset(make_spec(items=3, overlap=1, reward="0.05"))
    await join(store, 1)
    first = await serve(store, 1)
    recorded = await answer(store, 1, first, 0)
    assert recorded.undoable
    reopened = await undo(store, 1, recorded, first.token)

    assert reopened.text == first.text and reopened.token != first.token
    assert reopened.number == 1  # the worker is back at their first item
    assert await store.next_item_for(1) == reopened  # the item sent after it went back
    assert await store.answers_for_export(reopened.taskset.id) == []
    assert await balance(store, 1) == [Balance("USD", 0, 0, 0)]
    numbers = await store.standing.my_numbers(1, reopened.taskset.id)
    assert numbers is not None and numbers.answers_total == 0
    async with store.sessions() as session:
        reason = await session.scalar(select(LedgerAdjustment.reason))
        kinds = list(await session.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id)))
    assert reason == "answer undone" and kinds == ["reward", "reversal"]
    await consistent(store)

    again = await answer(store, 1, reopened, 2)
    assert isinstance(again.next, ServedItem)
    answers = await store.answers_for_export(reopened.taskset.id)
    assert [(a.item_id, a.label) for a in answers] == [("t0", "neutral")]
    assert await balance(store, 1) == [Balance("USD", 5, 0, 0)]
    statement = await store.ledger.statement(1)
    assert [line.kind for line in statement.lines] == [
        LedgerKind.ANSWERED_AGAIN,
        LedgerKind.UNDONE,
        LedgerKind.REWARD,
    ]
    await consistent(store)


async def test_undo_twice_and_a_skip_undone_then_labeled(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=2))
    await join(store, 1)
    item = await serve(store, 1)
    for choice in (0, 1, "skip", 2):
        recorded = await answer(store, 1, item, choice)
        item = await undo(store, 1, recorded, item.token)
        await consistent(store)
    await answer(store, 1, item, 0)
    assert await balance(store, 1) == [Balance("USD", 2, 0, 0)]
    async with store.sessions() as session:
        rows = list(await session.scalars(select(Answer)))
    assert len(rows) == 1 and rows[0].label == "positive" and rows[0].withdrawn_at is None
    await consistent(store)


async def test_a_double_undo_changes_nothing_twice(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=1))
    await join(store, 1)
    first = await serve(store, 1)
    recorded = await answer(store, 1, first, 0)
    reopened = await undo(store, 1, recorded, first.token)

    repeat = await store.undo_answer(recorded.answer_id, first.token, 1)
    assert repeat == UndoRefused(UndoRefusal.ALREADY, reopened)  # shown again, nothing undone
    again = await answer(store, 1, reopened, 1)
    late_repeat = await store.undo_answer(recorded.answer_id, first.token, 1)
    assert late_repeat == UndoRefused(UndoRefusal.ALREADY)  # the new answer stays
    assert again.answer_id == recorded.answer_id  # written over the undone one
    stale = await store.record_answer(first.token, 1, 2)  # the first item message's button
    assert stale == Rejected(Rejection.FORGED)
    async with store.sessions() as session:
        kinds = list(await session.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id)))
    assert kinds == ["reward", "reversal", "restore"]  # one undo, one answer again
    await consistent(store)


async def test_undo_refusals(store: LabelStore, clock: Clock) -> None:
    await store.load_taskset(make_spec(items=4, overlap=1))
    for worker in (1, 2):
        await join(store, worker)
    first = await serve(store, 1)
    recorded = await answer(store, 1, first, 0)
    assert await store.undo_answer(recorded.answer_id, first.token, 2) == UndoRefused(
        UndoRefusal.FORGED
    )
    clock.advance(seconds=31)
    assert await store.undo_answer(recorded.answer_id, first.token, 1) == UndoRefused(
        UndoRefusal.TOO_LATE
    )

    # A skip gives the slot back: someone else takes it before the undo.
    assert isinstance(recorded.next, ServedItem)
    skipped = await answer(store, 1, recorded.next, "skip")
    assert (await serve(store, 2)).text == recorded.next.text
    taken = await store.undo_answer(skipped.answer_id, recorded.next.token, 1)
    assert taken == UndoRefused(UndoRefusal.TAKEN)
    await consistent(store)


async def test_no_undo_for_gold_answers_or_in_a_closed_set(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=2, gold=1, overlap=1, gold_ratio=1.0))
    await join(store, 1)
    gold = await serve(store, 1)
    graded = await answer(store, 1, gold, 0)
    assert graded.gold is not None and not graded.undoable
    refused = await store.undo_answer(graded.answer_id, gold.token, 1)
    assert refused == UndoRefused(UndoRefusal.FORGED)

    assert isinstance(graded.next, ServedItem)
    recorded = await answer(store, 1, graded.next, 1)
    assert recorded.undoable
    await store.coordination.change_status(graded.next.taskset.id, "close")
    refused = await store.undo_answer(recorded.answer_id, graded.next.token, 1)
    assert refused == UndoRefused(UndoRefusal.NOT_ACTIVE)
    await consistent(store)


async def test_undo_keeps_the_item_open_for_the_worker_and_counts_right(
    store: LabelStore,
) -> None:
    await store.load_taskset(make_spec(items=2, overlap=1))
    await join(store, 1)
    await join(store, 2)
    first = await serve(store, 1)
    recorded = await answer(store, 1, first, 0)
    assert isinstance(recorded.next, ServedItem)
    await undo(store, 1, recorded, first.token)
    async with store.sessions() as session:
        items = (await session.execute(select(Item).order_by(Item.position))).scalars().all()
        counts = [(i.answer_count, i.in_flight, i.open) for i in items]
    # Item 1 leased to the worker again; item 2, sent after it, back in the pool.
    assert counts == [(0, 1, False), (0, 0, True)]
    assert (await serve(store, 2)).text == recorded.next.text
    assert isinstance(await store.next_item_for(1), ServedItem)
    await consistent(store)


async def test_unsure_reason_only_on_the_workers_own_unsure_answer(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=1))
    await join(store, 1)
    first = await serve(store, 1)
    unsure = await answer(store, 1, first, "unsure")
    assert isinstance(unsure.next, ServedItem)
    labeled = await answer(store, 1, unsure.next, 0)
    assert not await store.set_unsure_reason(unsure.answer_id, 2, "not mine")
    assert not await store.set_unsure_reason(labeled.answer_id, 1, "a label")
    assert await store.set_unsure_reason(unsure.answer_id, 1, "sarcasm or not?")
    async with store.sessions() as session:
        reasons = list(await session.scalars(select(Answer.reason).order_by(Answer.id)))
    assert reasons == ["sarcasm or not?", None]


async def test_undo_takes_the_answer_out_of_the_review_queue(store: LabelStore) -> None:
    await store.load_taskset(make_spec(items=3, overlap=1, review={"sample": 1.0}))
    await join(store, 1)
    await join(store, 2)  # the reviewer, below
    first = await serve(store, 1)
    recorded = await answer(store, 1, first, 0)
    assert await count_reviews(store) == 1  # every answer sampled
    reopened = await undo(store, 1, recorded, first.token)
    assert await count_reviews(store) == 0
    again = await answer(store, 1, reopened, 1)  # queued again with the new answer
    assert await count_reviews(store) == 1

    async with store.sessions.begin() as session:  # a reviewer's verdict on it
        await session.execute(update(Review).values(worker_id=2, verdict=ReviewVerdict.CORRECT))
    refused = await store.undo_answer(again.answer_id, reopened.token, 1)
    assert refused == UndoRefused(UndoRefusal.REVIEWED)
    await consistent(store)


async def count_reviews(store: LabelStore) -> int:
    async with store.sessions() as session:
        return len(list(await session.scalars(select(Review.id))))


async def test_an_undone_answer_is_in_no_export(store: LabelStore) -> None:
    await store.load_taskset(make_spec("undone", items=3, overlap=1))
    await join(store, 1)
    first = await serve(store, 1)
    await undo(store, 1, await answer(store, 1, first, 0), first.token)

    for options in ({"raw": True}, {"method": "mv"}, {"method": "ds"}):
        out = io.StringIO(newline="")
        await export_taskset(store, "undone", out, **options)  # type: ignore[arg-type]
        rows = list(csv.DictReader(io.StringIO(out.getvalue().removeprefix("\ufeff"))))
        if options.get("raw"):
            assert rows == [], options
        else:
            assert [(row["item_id"], row["answers"]) for row in rows] == [
                ("t0", "0"),
                ("t1", "0"),
                ("t2", "0"),
            ], options
