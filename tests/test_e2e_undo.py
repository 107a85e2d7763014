"""Undo and "not sure" reasons through the real Application and the fake Bot API: both layouts,
both databases, with double taps, redelivered updates and taps that come too late."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser
from bot.fakegram.rendering import message_text
from handlers import texts
from storage.models import Answer, LedgerAdjustment, LedgerEntry
from storage.results import Rejection, UndoRefusal
from tests.conftest import Clock, running_bot
from tests.factories import LABELS, make_spec
from tests.test_e2e_card import chat_calls
from tests.test_e2e_worker import button_texts, settled, store_of

ITEM_BUTTONS = [*LABELS, texts.SKIP_BUTTON, texts.UNSURE_BUTTON]


@pytest.fixture
async def bot(telegram: FakeTelegram, db_url: str, clock: Clock) -> AsyncIterator[LabelBotApp]:
    """One transport is enough here (the worker tests run both)."""
    async with running_bot(telegram, db_url, clock, rate_limit=0) as application:
        yield application


def showing(number: int) -> Callable[[dict[str, Any]], bool]:
    """A message (item or card) showing item ``number`` with its label buttons."""
    return lambda m: f"\nItem {number}\n" in "\n" + message_text(m) and "Skip" in button_texts(m)


async def consistent(bot: LabelBotApp) -> None:
    violations = await store_of(bot).consistency_violations()
    assert violations == dict.fromkeys(violations, 0)


async def live_labels(bot: LabelBotApp) -> list[str | None]:
    async with store_of(bot).sessions() as session:
        rows = await session.scalars(
            select(Answer.label).where(Answer.withdrawn_at.is_(None)).order_by(Answer.id)
        )
        return list(rows)


async def count(bot: LabelBotApp, model: Any) -> int:
    async with store_of(bot).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def started(bot: LabelBotApp, telegram: FakeTelegram, uid: int, **spec: Any) -> FakeUser:
    await store_of(bot).load_taskset(make_spec(**{"items": 3, "overlap": 1, **spec}))
    user = telegram.user(uid, f"Worker{uid}")
    await user.send_text("/start")
    await user.wait_for(showing(1))
    return user


async def test_undo_in_a_chat_reopens_the_answered_item_and_puts_the_next_one_back(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    ann = await started(bot, telegram, 301, reward="0.05")
    first = await ann.wait_for(showing(1))
    await ann.press("positive", message_id=first["message_id"])
    second = await ann.wait_for(showing(2))
    await settled(bot, telegram)  # the answered item shows its Undo after it
    answered = ann.messages[-2]
    assert "Your answer: positive" in answered["text"]
    assert button_texts(answered) == [texts.UNDO_BUTTON]
    stale = second["reply_markup"]["inline_keyboard"][0][0]["callback_data"]

    calls = len(telegram.calls)
    await ann.press(texts.UNDO_BUTTON, message_id=first["message_id"])
    reopened = await ann.wait_for(
        lambda m: message_text(m).startswith(texts.UNDONE) and showing(1)(m)
    )
    assert reopened["message_id"] == first["message_id"]
    assert button_texts(reopened) == ITEM_BUTTONS
    assert "text" not in await ann.wait_alert()  # the answer's spinner
    assert (await ann.wait_alert())["text"] == texts.UNDONE
    await settled(bot, telegram)
    # The item sent next went back to the pool: its message says so and keeps no button that
    # would only answer "not valid".
    put_back = ann.message(second["message_id"])
    assert message_text(put_back) == texts.PUT_BACK and button_texts(put_back) == []
    assert [c.method for c in chat_calls(telegram, ann, calls)] == ["editMessageText"] * 2
    assert await live_labels(bot) == []
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(LedgerAdjustment.reason)) == "answer undone"
    await consistent(bot)

    await ann.press("negative", message_id=first["message_id"])
    await ann.wait_for(lambda m: m["message_id"] > second["message_id"] and showing(2)(m))
    await ann.press_data(stale, second["message_id"])  # a button of the item put back
    await settled(bot, telegram)
    assert ann.alerts[-1]["text"] == texts.ALERTS[Rejection.FORGED]
    assert await live_labels(bot) == ["negative"]
    balances = await store_of(bot).ledger.balances(301)
    assert [b.available_minor for b in balances] == [5]  # one reward, not two
    await consistent(bot)


async def test_undo_in_a_chat_puts_back_a_media_item_by_its_caption_and_only_an_unanswered_one(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = make_spec(items=3, overlap=1)
    items = [
        item.model_copy(update={"image": f"https://example.org/{n}.jpg"}) if n == 1 else item
        for n, item in enumerate(spec.items)
    ]
    await store_of(bot).load_taskset(spec.model_copy(update={"items": items}))
    ann = telegram.user(309, "Ann")
    await ann.send_text("/start")
    first = await ann.wait_for(showing(1))
    await ann.press("positive", message_id=first["message_id"])
    photo = await ann.wait_for(showing(2))
    await settled(bot, telegram)  # the answered item shows its Undo after it
    await ann.press(texts.UNDO_BUTTON, message_id=first["message_id"])
    await ann.wait_for(lambda m: message_text(m).startswith(texts.UNDONE))
    await settled(bot, telegram)
    put_back = ann.message(photo["message_id"])
    assert put_back["caption"] == texts.PUT_BACK and button_texts(put_back) == []
    assert "photo" in put_back

    # Item 1 again, then item 2 answered too: undoing item 1 now leaves item 2's answer alone.
    await ann.press("negative", message_id=first["message_id"])
    second = await ann.wait_for(lambda m: m["message_id"] > photo["message_id"] and showing(2)(m))
    await ann.press("neutral", message_id=second["message_id"])
    await ann.wait_for(showing(3))
    await ann.press(texts.UNDO_BUTTON, message_id=first["message_id"])
    await settled(bot, telegram)
    answered = ann.message(second["message_id"])
    assert "Your answer: neutral" in message_text(answered)
    assert await live_labels(bot) == ["neutral"]
    await consistent(bot)


async def test_undo_on_a_card_brings_the_previous_item_back(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    ann = await started(bot, telegram, 302, layout="card")
    card = await ann.wait_for(showing(1))
    await ann.press("positive", message_id=card["message_id"])
    card = await ann.wait_for(showing(2))
    assert button_texts(card) == [*ITEM_BUTTONS, texts.UNDO_BUTTON]

    await ann.press(texts.UNDO_BUTTON, message_id=card["message_id"])
    card = await ann.wait_for(showing(1))
    assert message_text(card).startswith(texts.UNDONE)
    assert button_texts(card) == ITEM_BUTTONS
    await ann.press("neutral", message_id=card["message_id"])
    card = await ann.wait_for(showing(2))
    assert message_text(card).startswith("✓ neutral · Item 1")
    await settled(bot, telegram)
    assert len(ann.messages) == 2  # the greeting and the one card
    assert await live_labels(bot) == ["neutral"]
    await consistent(bot)


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_undo_after_30_seconds_is_too_late(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock, layout: str
) -> None:
    ann = await started(bot, telegram, 303, layout=layout)
    await ann.press("positive")
    await ann.wait_for(showing(2))
    await settled(bot, telegram)  # the answered item shows its Undo after it
    clock.advance(seconds=31)
    await ann.press(texts.UNDO_BUTTON)
    await settled(bot, telegram)
    alert = ann.alerts[-1]
    assert alert["text"] == texts.UNDO_ALERTS[UndoRefusal.TOO_LATE] and alert["show_alert"]
    assert all(texts.UNDO_BUTTON not in button_texts(m) for m in ann.messages)  # taken away
    assert showing(2)(ann.messages[-1])
    assert await live_labels(bot) == ["positive"]
    await consistent(bot)


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_a_double_tap_or_a_redelivered_undo_undoes_once(
    bot: LabelBotApp, telegram: FakeTelegram, layout: str
) -> None:
    ann = await started(bot, telegram, 304, layout=layout, reward="0.05")
    await ann.press("positive")
    await ann.wait_for(showing(2))
    await settled(bot, telegram)  # the answered item shows its Undo after it
    undo = next(m for m in reversed(ann.messages) if texts.UNDO_BUTTON in button_texts(m))
    data = next(b for b in undo["reply_markup"]["inline_keyboard"][-1] if "Undo" in b["text"])
    update_id = await ann.press(texts.UNDO_BUTTON, message_id=undo["message_id"])
    await ann.press_data(data["callback_data"], undo["message_id"])  # the double tap
    telegram.redeliver(update_id)  # and Telegram sending the first again
    await settled(bot, telegram)

    reopened = [m for m in ann.messages if showing(1)(m)]
    assert len(reopened) == 1 and texts.ERROR not in ann.texts()
    assert await count(bot, LedgerAdjustment) == 1
    assert await count(bot, LedgerEntry) == 2  # the reward and one reversal
    await ann.press("negative", message_id=reopened[0]["message_id"])
    await settled(bot, telegram)
    assert showing(2)(ann.messages[-1])
    telegram.redeliver(update_id)  # long after: the new answer stays
    await settled(bot, telegram)
    assert await live_labels(bot) == ["negative"]
    assert await count(bot, LedgerEntry) == 3  # ... and the reversal restored
    await consistent(bot)


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_a_gold_answer_offers_no_undo(
    bot: LabelBotApp, telegram: FakeTelegram, layout: str
) -> None:
    ann = await started(bot, telegram, 305, items=2, gold=1, gold_ratio=1.0, layout=layout)
    await ann.press("neutral")  # control 0 is "positive"
    await ann.wait_for(showing(2))
    await settled(bot, telegram)
    offered = [b for m in ann.messages for b in button_texts(m)]
    assert texts.DISPUTE_BUTTON in offered and texts.UNDO_BUTTON not in offered


async def test_undo_when_the_item_went_to_someone_else(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    ann = await started(bot, telegram, 306)
    await ann.press(texts.SKIP_BUTTON)  # a skip gives the item's slot back
    await ann.wait_for(showing(2))
    bob = telegram.user(307, "Bob")
    await bob.send_text("/start")
    await bob.wait_for(showing(1))
    await ann.press(texts.UNDO_BUTTON)
    await settled(bot, telegram)
    assert ann.alerts[-1]["text"] == texts.UNDO_ALERTS[UndoRefusal.TAKEN]
    assert all(texts.UNDO_BUTTON not in button_texts(m) for m in ann.messages)
    await consistent(bot)


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_not_sure_asks_why_and_keeps_the_reply(
    bot: LabelBotApp, telegram: FakeTelegram, layout: str
) -> None:
    ann = await started(bot, telegram, 308, layout=layout)
    await ann.press(texts.UNSURE_BUTTON)
    await ann.wait_for(showing(2))  # the next item comes at once
    prompt = ann.reply_field
    assert prompt is not None and prompt["text"].startswith("Why not sure? (optional)")
    await ann.send_text("sarcasm or praise?", reply_to=prompt)
    await ann.wait_for(texts.UNSURE_REASON_SAVED)
    await settled(bot, telegram)
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(Answer.reason)) == "sarcasm or praise?"
    taskset = await store_of(bot).taskset_id("sentiment")
    assert taskset is not None
    unsure = await store_of(bot).coordination.unsure_items(taskset)
    assert [(u.item_id, u.reasons) for u in unsure] == [("t0", ["sarcasm or praise?"])]


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_skip_reason_takes_the_prompt_away(
    bot: LabelBotApp, telegram: FakeTelegram, layout: str
) -> None:
    ann = await started(bot, telegram, 309, layout=layout)
    await ann.press(texts.UNSURE_BUTTON)
    await ann.wait_for(showing(2))
    await settled(bot, telegram)  # the answered item shows its Undo after it
    assert ann.reply_field is not None
    await ann.press(texts.NO_REASON_BUTTON)
    await settled(bot, telegram)
    assert ann.reply_field is None
    assert not any(t.startswith("Why not sure?") for t in ann.texts())
    assert ann.alerts[-1]["text"] == texts.NO_REASON
    assert all(texts.NO_REASON_BUTTON not in button_texts(m) for m in ann.messages)
    assert showing(2)(ann.messages[-1])
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(Answer.reason)) is None


async def test_a_reply_that_answers_no_prompt_is_no_reason(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    ann = await started(bot, telegram, 310)
    await ann.press(texts.UNSURE_BUTTON)
    item = await ann.wait_for(showing(2))
    await ann.send_text("what does this mean?", reply_to=item)  # not the prompt
    await settled(bot, telegram)
    said = ann.texts()
    assert texts.UNSURE_REASON_SAVED not in said and texts.UNSURE_REASON_STALE not in said
    assert texts.DISPUTE_RECORDED not in said
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(Answer.reason)) is None
