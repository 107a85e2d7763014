"""The earnings ledger on both databases: pending and available money, reversal at a
suspension and restoring at a reinstatement, accuracy bonuses, payouts paid exactly once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from storage.ledger import Balance, MarkedPaid, PayoutRefused
from storage.models import Assignment, Item, LedgerEntry, LedgerKind, TaskSetStatus
from storage.results import NoItem, NoItemReason, Recorded, ServedItem, StatusChange
from storage.store import LabelStore
from tasksets.payouts import PayoutRow
from tasksets.standing import Period
from tests.conftest import Clock
from tests.factories import LABELS, make_spec

FAST = {"quality": {"min_median_seconds": 1.0, "min_answers_for_speed": 5}}


async def join(store: LabelStore, worker: int, taskset_id: int, name: str = "") -> None:
    await store.join(worker, name or f"Worker {worker}", taskset_id=taskset_id)


async def gold_choice(store: LabelStore, token: str) -> int | None:
    """The index of the right label of a gold item (tests may peek; workers cannot)."""
    async with store.sessions() as session:
        gold = await session.scalar(
            select(Item.gold_label)
            .join(Assignment, Assignment.item_id == Item.id)
            .where(Assignment.token == token)
        )
    return LABELS.index(gold) if gold is not None else None


async def label(
    store: LabelStore, worker: int, count: int, *, right: bool = True
) -> list[StatusChange]:
    """Answer up to ``count`` items (gold ones right, or wrong); returns the status changes."""
    changes = []
    result = await store.next_item_for(worker)
    for _ in range(count):
        if not isinstance(result, ServedItem):
            break
        gold = await gold_choice(store, result.token)
        choice = 0 if gold is None else (gold if right else (gold + 1) % 3)
        outcome = await store.record_answer(result.token, worker, choice)
        assert isinstance(outcome, Recorded)
        if outcome.status_change is not None:
            changes.append(outcome.status_change)
        result = outcome.next
    return changes


async def balance(store: LabelStore, worker: int) -> Balance:
    [found] = await store.ledger.balances(worker)
    return found


async def consistent(store: LabelStore) -> None:
    violations = await store.consistency_violations()
    assert violations == dict.fromkeys(violations, 0)


async def test_a_reward_is_pending_for_the_hold_and_available_after(
    store: LabelStore, clock: Clock
) -> None:
    taskset_id = await store.load_taskset(
        make_spec(items=5, overlap=1, reward="0.05", hold_hours=24)
    )
    await join(store, 1, taskset_id)
    await label(store, 1, 2)
    assert await balance(store, 1) == Balance("USD", 0, 10, 0)
    clock.advance(hours=24)
    assert await balance(store, 1) == Balance("USD", 10, 0, 0)
    statement = await store.ledger.statement(1)
    assert [(line.kind, line.amount_minor) for line in statement.lines] == [
        (LedgerKind.REWARD, 5),
        (LedgerKind.REWARD, 5),
    ]
    await consistent(store)


async def test_no_hold_means_available_at_once(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=3, overlap=1, reward="0.02"))
    await join(store, 1, taskset_id)
    await label(store, 1, 3)
    assert await balance(store, 1) == Balance("USD", 6, 0, 0)


async def test_suspension_reverses_pending_money_and_reinstatement_restores_it(
    store: LabelStore, clock: Clock
) -> None:
    spec = make_spec(items=40, overlap=1, reward="0.05", hold_hours=48, **FAST)
    taskset_id = await store.load_taskset(spec)
    await join(store, 1, taskset_id)
    await label(store, 1, 3)  # at a reading pace
    clock.advance(hours=49)  # those three are available now
    clock.step = timedelta(seconds=0.1)  # then far too fast
    [change] = await label(store, 1, 20)
    assert change.status == "suspended"
    reversed_minor = change.reversed_minor
    assert reversed_minor > 0 and reversed_minor % 5 == 0
    # Available money stays; pending money is reversed, with the reason in the history.
    assert await balance(store, 1) == Balance("USD", 15, 0, 0)
    [latest, *_] = (await store.ledger.statement(1)).lines
    assert latest.kind == LedgerKind.REVERSAL and latest.amount_minor == -reversed_minor
    assert latest.reason == change.reason and "too fast" in (latest.reason or "")
    # Off the set's boards while suspended.
    board = await store.standing.board(taskset_id, Period.ALL, 1)
    assert board.rows == [] and board.caller is None
    await consistent(store)

    assert await store.reinstate(1) == 1
    assert await balance(store, 1) == Balance("USD", 15, reversed_minor, 0)
    [latest, *_] = (await store.ledger.statement(1)).lines
    assert latest.kind == LedgerKind.RESTORE and latest.amount_minor == reversed_minor
    assert [
        row.worker_id for row in (await store.standing.board(taskset_id, Period.ALL, 1)).rows
    ] == [1]
    assert await store.reinstate(1) == 0  # nothing to restore twice
    await consistent(store)

    # Suspended again: the restored money is pending, so it is reversed again, once.
    clock.step = timedelta(seconds=0.1)
    changes = await label(store, 1, 20)
    assert changes and changes[-1].reversed_minor >= reversed_minor
    assert (await balance(store, 1)).pending_minor == 0
    assert (await balance(store, 1)).available_minor == 15
    clock.advance(hours=49)  # everything reversed stays reversed once its date has come
    assert (await balance(store, 1)).available_minor == 15
    await consistent(store)


async def test_the_suspended_worker_is_told_how_much_was_reversed(
    store: LabelStore, clock: Clock
) -> None:
    spec = make_spec(items=30, overlap=1, reward="0.02", hold_hours=1, **FAST)
    taskset_id = await store.load_taskset(spec)
    await join(store, 1, taskset_id)
    clock.step = timedelta(seconds=0.1)
    result = await store.next_item_for(1)
    outcome = None
    while isinstance(result, ServedItem):
        outcome = await store.record_answer(result.token, 1, 0)
        assert isinstance(outcome, Recorded)
        result = outcome.next
    assert outcome is not None and outcome.status_change is not None
    assert isinstance(result, NoItem) and result.reason == NoItemReason.SUSPENDED
    async with store.sessions() as session:
        rewards = await session.scalar(
            select(func.count()).where(LedgerEntry.kind == LedgerKind.REWARD.value)
        )
    assert outcome.status_change.reversed_minor == 2 * int(rewards or 0)


async def test_an_accuracy_bonus_is_granted_once_when_the_set_closes(store: LabelStore) -> None:
    bonus = {"min_gold_accuracy": 0.8, "min_answers": 5, "percent": 20}
    spec = make_spec(items=20, gold=6, overlap=2, reward="0.10", gold_ratio=0.3, bonus=bonus)
    taskset_id = await store.load_taskset(spec)
    for worker in (1, 2, 3):
        await join(store, worker, taskset_id)
    await label(store, 1, 12, right=True)
    await label(store, 2, 12, right=False)  # wrong on every control question
    await label(store, 3, 2, right=True)  # too few answers
    await store.set_taskset_status(spec.name, TaskSetStatus.CLOSED)
    lines = [line for line in (await store.ledger.statement(1)).lines if line.kind == "bonus"]
    [bonus_line] = lines
    # 20 % of 12 answers at 0.10: 0.24, with the reason.
    assert bonus_line.amount_minor == 24 and "20% for" in (bonus_line.reason or "")
    for worker in (2, 3):
        assert all(line.kind != "bonus" for line in (await store.ledger.statement(worker)).lines)
    assert await store.ledger.grant_bonuses(taskset_id) == []  # never twice
    await consistent(store)


async def listed_and_paid(store: LabelStore, min_minor: int) -> list[PayoutRow]:
    listing = await store.ledger.list_payouts(min_minor, "USD")
    return listing.rows


async def test_payouts_pay_exactly_the_listed_money_once(store: LabelStore) -> None:
    taskset_id = await store.load_taskset(make_spec(items=20, overlap=2, reward="0.05"))
    for worker in (1, 2, 3):
        await join(store, worker, taskset_id, name=f"W{worker}")
    await label(store, 1, 4)
    await label(store, 2, 2)
    await label(store, 3, 1)
    listing = await store.ledger.list_payouts(10, "USD")
    assert listing.batch_id is not None
    assert [(row.worker_id, row.amount_minor) for row in listing.rows] == [(1, 20), (2, 10)]
    # The same money is never in two listings.
    assert (await store.ledger.list_payouts(10, "USD")).rows == []
    paid = await store.ledger.mark_paid(listing.rows)
    assert paid == MarkedPaid(listing.batch_id, 2, 30, "USD")
    assert await balance(store, 1) == Balance("USD", 0, 0, 20)
    assert await balance(store, 3) == Balance("USD", 5, 0, 0)
    replay = await store.ledger.mark_paid(listing.rows)
    assert isinstance(replay, PayoutRefused) and "already" in replay.reason
    await consistent(store)

    # A file whose amounts were changed is refused whole, and nothing is written.
    await label(store, 1, 2)
    second = await store.ledger.list_payouts(10, "USD")
    [row] = second.rows
    tampered = [PayoutRow(row.worker_id, row.display_name, 999, "USD", row.batch_id)]
    refused = await store.ledger.mark_paid(tampered)
    assert isinstance(refused, PayoutRefused) and "no longer match" in refused.reason
    assert await balance(store, 1) == Balance("USD", 10, 0, 20)
    # A cancelled listing frees its money for the next one.
    assert second.batch_id is not None and await store.ledger.cancel_payouts(second.batch_id)
    assert isinstance(await store.ledger.mark_paid(second.rows), PayoutRefused)
    third = await store.ledger.list_payouts(10, "USD")
    assert [(r.worker_id, r.amount_minor) for r in third.rows] == [(1, 10)]
    await consistent(store)


async def test_pending_money_is_not_listed_for_payout(store: LabelStore, clock: Clock) -> None:
    taskset_id = await store.load_taskset(make_spec(items=5, overlap=1, hold_hours=2))
    await join(store, 1, taskset_id)
    await label(store, 1, 3)
    assert (await store.ledger.list_payouts(1, "USD")).rows == []
    clock.advance(hours=2)
    assert [r.amount_minor for r in (await store.ledger.list_payouts(1, "USD")).rows] == [6]
