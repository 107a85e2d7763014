"""Telling workers about a published task set: 500 workers within Telegram's limits, with 429s
and blocked users, taps answered promptly meanwhile, a restart that tells nobody twice, the
/settings opt-out, and the coordinators told when a set completes.

The pacing is scaled ten times up so the test takes seconds: the bot's limiter at 300 requests a
second (30 in production) and the broadcast at 200 messages a second (20). The limits are
checked on the fake's own timestamps, scaled the same way: at most 25 broadcast messages in any
tenth of a second (Telegram: about 25-30 a second), one message per chat, and the coordinator's
progress edits at least a second apart (not scaled: Telegram's one per chat per second).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from bot.app import LabelBotApp
from bot.fakegram import ApiCall, FakeTelegram, FakeUser
from handlers import coordinator, texts
from handlers.services import Services
from storage.models import (
    BroadcastRecipient,
    DeliveryState,
    TaskSetStatus,
    Worker,
    WorkerStatus,
)
from storage.store import LabelStore
from tests.conftest import Clock, running_bot
from tests.factories import make_spec

COORDINATOR = 900
SCALE = 10  # the test runs ten times faster than production
WINDOW = 1.0 / SCALE
MAX_PER_WINDOW = 25  # Telegram: about 25-30 messages a second overall
NEW_TASK = "New task: “Fresh”"


def store_of(bot: LabelBotApp) -> LabelStore:
    services: Services = bot.bot_data
    return services.store


def scaled_bot(
    telegram: FakeTelegram, db_url: str, clock: Clock, broadcast_rate: float = 20 * SCALE
) -> Any:
    return running_bot(
        telegram,
        db_url,
        clock,
        rate_limit=30 * SCALE,
        broadcast_rate=broadcast_rate,
        coordinators=frozenset({COORDINATOR}),
    )


@pytest.fixture
async def bot(telegram: FakeTelegram, db_url: str, clock: Clock) -> AsyncIterator[LabelBotApp]:
    async with scaled_bot(telegram, db_url, clock) as application:
        yield application


async def add_workers(store: LabelStore, telegram: FakeTelegram, ids: range) -> list[FakeUser]:
    """Workers the bot knows (as after their /start) with an open private chat each."""
    async with store.sessions.begin() as session:
        await session.execute(
            insert(Worker),
            [
                {
                    "id": worker_id,
                    "display_name": f"W{worker_id}",
                    "status": WorkerStatus.ACTIVE,
                    "joined_at": datetime(2026, 1, 1, tzinfo=UTC),
                }
                for worker_id in ids
            ],
        )
    return [telegram.user(worker_id, f"W{worker_id}") for worker_id in ids]


async def publish_draft(store: LabelStore, telegram: FakeTelegram) -> FakeUser:
    """The coordinator publishes the draft "fresh" from its /tasksets card."""
    await store.load_taskset(make_spec("fresh", items=5), status=TaskSetStatus.DRAFT)
    cora = telegram.user(COORDINATOR, "Cora")
    await cora.send_text("/tasksets")
    card = await cora.wait_for("(fresh) – draft")
    await cora.press(texts.PUBLISH_BUTTON, message_id=card["message_id"])
    await cora.wait_for("Published “Fresh”")
    return cora


def told(users: list[FakeUser]) -> Counter[int]:
    return Counter(
        user.id for user in users for text in user.texts() if text.startswith("🆕 " + NEW_TASK)
    )


def most_in_a_window(moments: list[float], window: float) -> int:
    """The largest number of moments within any ``window`` seconds."""
    most, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def sends_to(calls: list[ApiCall], chats: set[int]) -> list[ApiCall]:
    return [c for c in calls if c.method == "sendMessage" and c.params.get("chat_id") in chats]


async def test_500_workers_are_told_once_within_limits_while_taps_stay_prompt(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    store = store_of(bot)
    users = await add_workers(store, telegram, range(10_000, 10_500))
    blocked = {user.id for user in users[::20]}  # 25 blocked the bot
    for worker_id in blocked:
        telegram.block(worker_id)
    # Telegram's flood control answers two sends with 429 retry_after=1.
    throttled = [users[11].id, users[33].id]
    for worker_id in throttled:
        telegram.fail_next("sendMessage", 429, retry_after=1, chat_id=worker_id)
    # A worker labeling another set meanwhile.
    await store.load_taskset(make_spec("busy", items=50, overlap=1))
    tapper = telegram.user(20_000, "Tess")
    await tapper.send_text("/start")
    item = await tapper.wait_for("Item 1")
    started = time.monotonic()

    cora = await publish_draft(store, telegram)

    # Mid-broadcast (after the 429s), the worker taps: the answer comes at once.
    recipients = {user.id for user in users}
    await cora.wait_for(lambda _: len(sends_to(telegram.calls, recipients)) >= 250, timeout=30)
    tapped = time.monotonic()
    await tapper.press("positive", message_id=item["message_id"])
    await tapper.wait_for("Item 2")
    answered = time.monotonic() - tapped
    during = len(told(users))
    final = await cora.wait_for(f"📣 Told workers about “Fresh”: {500 - 25 + 1} of 501", 30)
    elapsed = time.monotonic() - started

    assert answered < 0.5, f"a tap took {answered:.2f} s during the broadcast"
    assert during < 475, "the tap was not during the broadcast"
    assert "25 blocked the bot" in final["text"]
    reached = [user for user in users if user.id not in blocked]
    assert told(reached) == Counter({user.id: 1 for user in reached})
    assert told([tapper]) == Counter({tapper.id: 1})
    async with store.sessions() as session:
        inactive = set(
            await session.scalars(select(Worker.id).where(Worker.status == WorkerStatus.INACTIVE))
        )
        states = Counter(await session.scalars(select(BroadcastRecipient.state)))
    assert inactive == blocked
    assert states == {DeliveryState.SENT: 476, DeliveryState.BLOCKED: 25}

    sends = sends_to(telegram.calls, recipients)
    moments = [call.at for call in sends]
    assert most_in_a_window(moments, WINDOW) <= MAX_PER_WINDOW
    per_chat = Counter(call.params["chat_id"] for call in sends)
    assert set(per_chat.values()) == {1, 2} and {c for c, n in per_chat.items() if n == 2} == set(
        throttled
    )
    for worker_id in throttled:  # retried only after retry_after
        first, again = [call.at for call in sends if call.params["chat_id"] == worker_id]
        assert again - first >= 1.0
    edits = [
        call.at
        for call in telegram.calls
        if call.method == "editMessageText" and call.params.get("chat_id") == COORDINATOR
    ]
    assert len(edits) >= 2
    assert min(b - a for a, b in itertools.pairwise(edits)) >= 1.0
    print(
        f"broadcast of 501: {elapsed:.2f} s, {501 / elapsed:.0f} messages/s, tap {answered:.3f} s"
    )


async def test_a_restart_mid_broadcast_resumes_and_tells_nobody_twice(
    telegram: FakeTelegram, db_url: str, clock: Clock
) -> None:
    # The first process broadcasts slowly enough (300 take 7.5 s) to be stopped midway.
    async with scaled_bot(telegram, db_url, clock, broadcast_rate=40) as first:
        store = store_of(first)
        users = await add_workers(store, telegram, range(30_000, 30_300))
        recipients = {user.id for user in users}
        cora = await publish_draft(store, telegram)
        await cora.wait_for(lambda _: len(sends_to(telegram.calls, recipients)) >= 80, timeout=30)
    before = len(told(users))
    progress = [m for m in cora.messages if m.get("text", "").startswith("📣")]
    assert 80 <= before < 300, before

    async with scaled_bot(telegram, db_url, clock):
        final = await cora.wait_for("📣 Told workers about “Fresh”: 300 of 300 told", timeout=30)

    assert told(users) == Counter({user.id: 1 for user in users})
    assert [m["message_id"] for m in progress] == [final["message_id"]]  # one message, edited
    assert len(sends_to(telegram.calls, recipients)) == 300


async def test_a_worker_who_turned_messages_off_is_not_told(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    store = store_of(bot)
    await store.load_taskset(make_spec("busy", items=4))
    quiet, eager = telegram.user(41, "Quinn"), telegram.user(42, "Eve")
    for user in (quiet, eager):
        await user.send_text("/start")
        await user.wait_for("Item 1")
    await quiet.send_text("/settings")
    menu = await quiet.wait_for("Messages about new tasks: on")
    await quiet.press(texts.notify_button(True), message_id=menu["message_id"])
    await quiet.wait_for(lambda m: texts.notify_button(False) in str(m.get("reply_markup")))

    cora = await publish_draft(store, telegram)

    await cora.wait_for("📣 Told workers about “Fresh”: 1 of 1 told")
    assert told([quiet, eager]) == Counter({eager.id: 1})
    assert NEW_TASK in eager.last["text"] and "/settings" in eager.last["text"]


async def test_coordinators_are_told_when_a_set_completes(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec("small", items=2, overlap=1))
    cora = telegram.user(COORDINATOR, "Cora")
    await cora.send_text("/tasksets")
    await cora.wait_for("(small) – active")
    ann = telegram.user(51, "Ann")
    await ann.send_text("/start")
    for number in (1, 2):
        item = await ann.wait_for(f"Item {number}")
        await ann.press("negative", message_id=item["message_id"])
    await ann.wait_for("All done")
    [job] = [j for j in bot.job_queue.jobs() if j.callback is coordinator.report_completed]  # type: ignore[union-attr]

    await job.run(bot)
    await job.run(bot)  # once only

    await cora.wait_for("🎉 “Small” is complete: all 2 items have their answers")
    assert sum("is complete" in text for text in cora.texts()) == 1
