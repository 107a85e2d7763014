"""The card layout: one message edited from item to item, both databases, both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser
from bot.fakegram.rendering import message_text
from handlers import texts
from storage.models import Dispute, Worker, WorkerStatus
from storage.results import Rejection
from tests.conftest import Clock, running_bot
from tests.factories import LABELS, make_spec
from tests.test_e2e_worker import ALL_DONE, answers_in_db, button_texts, settled, store_of
from tests.test_run import webhook_environment
from tests.watched import Watched


def showing(number: int) -> Callable[[dict[str, Any]], bool]:
    """Matches a card that shows item ``number`` with its buttons."""
    return lambda m: f"\nItem {number}\n" in "\n" + message_text(m) and "reply_markup" in m


def chat_calls(telegram: FakeTelegram, user: FakeUser, since: int = 0) -> list[Any]:
    """The calls to the user's chat (the ones a rate limiter counts), from call ``since`` on."""
    return [c for c in telegram.calls[since:] if c.params.get("chat_id") == user.id]


async def test_card_loop_edits_one_message_to_the_end(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=6, overlap=1, layout="card"))
    ann = telegram.user(201, "Ann")
    await ann.send_text("/start")
    card = await ann.wait_for(showing(1))
    since = len(telegram.calls)

    for number in range(1, 7):
        await ann.press(LABELS[number % 3], message_id=card["message_id"])
        card = await ann.wait_for(
            showing(number + 1) if number < 6 else (lambda m: ALL_DONE in message_text(m))
        )
        head = message_text(card).split("\n")[0]
        assert head == f"✓ {LABELS[number % 3]} · Item {number}"
    await settled(bot, telegram)

    assert await answers_in_db(bot) == 6
    assert button_texts(card) == [texts.UNDO_BUTTON]  # for the last answer
    assert len([m for m in ann.messages if "Item" in message_text(m)]) == 1  # one card only
    calls = chat_calls(telegram, ann, since)
    assert [c.method for c in calls] == ["editMessageText"] * 6  # one limited call an answer
    toasts = [a["text"] for a in ann.alerts]
    assert toasts == [texts.card_answered(LABELS[n % 3]) for n in range(1, 7)]


async def test_gold_feedback_sits_above_the_next_card_with_its_dispute_button(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = make_spec(items=1, gold=1, overlap=1, gold_ratio=1.0, layout="card")
    await store_of(bot).load_taskset(spec)
    ann = telegram.user(202, "Ann")
    await ann.send_text("/start")
    first = await ann.wait_for(showing(1))
    assert "control 0" in first["text"]
    await ann.press("neutral", message_id=first["message_id"])  # control 0 is "positive"
    card = await ann.wait_for(showing(2))
    assert card["message_id"] == first["message_id"]
    lines = card["text"].split("\n")
    assert lines[:3] == ["❌ The expected answer was “positive”.", "why 0", "✓ neutral · Item 1"]
    assert [b["text"] for b in card["reply_markup"]["inline_keyboard"][-1]] == ["Dispute"]

    await ann.press("Dispute", message_id=card["message_id"])
    prompt = await ann.wait_for("Dispute #")
    card = await ann.wait_for(lambda m: m["message_id"] == first["message_id"])
    buttons = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [*LABELS, "Skip", "Not sure"]  # the item's buttons stay
    await ann.send_text("It reads as neutral to me", reply_to=prompt)
    await ann.wait_for("a coordinator will review")
    await ann.press("Skip", message_id=card["message_id"])
    await ann.wait_for(lambda m: ALL_DONE in message_text(m))
    await settled(bot, telegram)
    async with store_of(bot).sessions() as session:
        dispute = (await session.scalars(select(Dispute))).one()
    assert dispute.reason == "It reads as neutral to me"
    assert await answers_in_db(bot) == 2


async def test_passing_the_training_is_told_on_the_card(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    qualification = {"items": 2, "min_accuracy": 0.5}
    spec = make_spec(items=2, gold=2, overlap=1, qualification=qualification, layout="card")
    await store_of(bot).load_taskset(spec)
    ann = telegram.user(203, "Ann")
    await ann.send_text("/start")
    for number in (1, 2):
        card = await ann.wait_for(showing(number))
        control = int(card["text"].split("\n\n")[-2].split()[-1])
        await ann.press(LABELS[control % 2], message_id=card["message_id"])
    card = await ann.wait_for(showing(3))
    assert "You passed the training" in card["text"] and "text number" in card["text"]


async def test_a_stale_card_says_so_and_shows_the_current_item(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1, layout="card"))
    ann = telegram.user(204, "Ann")
    await ann.send_text("/start")
    old = await ann.wait_for(showing(1))
    await ann.send_text("/next")  # a second card of the same item
    new = await ann.wait_for(lambda m: showing(1)(m) and m["message_id"] > old["message_id"])
    await ann.press("positive", message_id=new["message_id"])
    await ann.wait_for(showing(2))

    clock.advance(seconds=30)
    await ann.press("negative", message_id=old["message_id"])
    stale = await ann.wait_for(lambda m: m["message_id"] == old["message_id"] and showing(2)(m))
    assert stale["text"].startswith(texts.stale_card("positive"))
    assert (await ann.wait_alert())["text"] == texts.card_answered("positive")
    assert (await ann.wait_alert())["text"] == texts.ALERTS[Rejection.DUPLICATE]
    await settled(bot, telegram)
    assert await answers_in_db(bot) == 1


async def test_a_redelivered_tap_leaves_the_card_on_the_next_item(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1, layout="card"))
    ann = telegram.user(205, "Ann")
    await ann.send_text("/start")
    card = await ann.wait_for(showing(1))
    update_id = await ann.press("positive", message_id=card["message_id"])
    shown = await ann.wait_for(showing(2))
    clock.advance(seconds=30)
    for _ in range(2):  # the second finds the card as the first left it: "not modified"
        telegram.redeliver(update_id)
        await settled(bot, telegram)
    card = ann.messages[-1]
    # The item's buttons stay; the Undo of the first answer, 30 s old, is gone.
    item_rows = shown["reply_markup"]["inline_keyboard"][:-1]
    assert showing(2)(card) and card["reply_markup"]["inline_keyboard"] == item_rows
    assert texts.ERROR not in ann.texts()
    assert await answers_in_db(bot) == 1


async def test_media_cards_change_media_by_edit_and_text_by_a_new_message(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = make_spec(items=5, overlap=1, layout="card")
    media = {0: "image", 1: "video", 4: "image"}
    items = [
        item.model_copy(update={media[n]: f"https://example.org/{n}"}) if n in media else item
        for n, item in enumerate(spec.items)
    ]
    await store_of(bot).load_taskset(spec.model_copy(update={"items": items}))
    ann = telegram.user(206, "Ann")
    await ann.send_text("/start")
    for number in range(1, 6):
        card = await ann.wait_for(showing(number))
        await ann.press("neutral", message_id=card["message_id"])
    await ann.wait_for(lambda m: ALL_DONE in message_text(m))
    await settled(bot, telegram)

    methods = [c.method for c in chat_calls(telegram, ann) if c.method != "sendMessage"]
    # photo -> video by an edit; video -> text and text -> photo as new messages, the old card
    # keeping the confirmation; text -> text and the end by edits.
    assert methods == [
        "sendPhoto",
        "editMessageMedia",
        "editMessageCaption",
        "editMessageText",
        "editMessageText",
        "sendPhoto",
        "editMessageCaption",
    ]
    cards = [m for m in ann.messages if "Item" in message_text(m)]
    assert [message_text(m).split("\n")[0] for m in cards] == [
        "✓ neutral · Item 2",
        "✓ neutral · Item 4",
        "✓ neutral · Item 5",
    ]
    assert "video" in cards[0] and "photo" in cards[2]
    assert ann.messages[-1]["text"].startswith("🎉 All done")
    assert await answers_in_db(bot) == 5


@pytest.fixture
async def limited_bot(
    telegram: FakeTelegram, db_url: str, clock: Clock
) -> AsyncIterator[LabelBotApp]:
    """The bot with PTB's default rate limiter on, as in production."""
    async with running_bot(telegram, db_url, clock) as application:
        yield application


async def test_throttled_edits_wait_and_lose_no_tap(
    limited_bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    """Telegram answers 429 to a worker tapping faster than a message a second: the limiter
    waits and retries, so every tap is stored and every card shown, and no error is."""
    await store_of(limited_bot).load_taskset(make_spec(items=4, overlap=1, layout="card"))
    ann = telegram.user(207, "Ann")
    await ann.send_text("/start")
    card = await ann.wait_for(showing(1))
    telegram.fail_next("editMessageText", 429, retry_after=1, times=2, chat_id=ann.id)
    for number in range(1, 5):
        await ann.press("positive", message_id=card["message_id"])  # as soon as it shows
        card = await ann.wait_for(
            showing(number + 1) if number < 4 else (lambda m: ALL_DONE in message_text(m)),
            timeout=10,
        )
        if number == 1:
            telegram.fail_next("editMessageText", 429, retry_after=1, chat_id=ann.id)
    await settled(limited_bot, telegram)

    assert await answers_in_db(limited_bot) == 4
    edits = [c for c in chat_calls(telegram, ann) if c.method == "editMessageText"]
    assert len(edits) == 4 + 3  # three refused by Telegram, each retried
    assert texts.ERROR not in ann.texts()
    assert not any(texts.ERROR in str(alert.get("text")) for alert in ann.alerts)


def test_the_layout_is_chat_or_card() -> None:
    assert make_spec(items=1).layout == "chat"
    assert make_spec(items=1, layout="card").layout == "card"
    with pytest.raises(ValidationError, match="layout"):
        make_spec(items=1, layout="grid")


async def test_a_webhook_process_labels_on_one_card(telegram: FakeTelegram, tmp_path: Path) -> None:
    env = webhook_environment(telegram, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    source = tmp_path / "cards.json"
    spec = make_spec("cards", items=3, overlap=1, layout="card")
    source.write_text(spec.model_dump_json(exclude_defaults=True))
    loader = await Watched.labelbot("load", str(source), env=env)
    assert await loader.exited() == 0, loader.output
    bot = await Watched.labelbot("run", env=env)
    ann = telegram.user(208, "Ann")
    await ann.send_text("/start")
    card = await ann.wait_for(showing(1), timeout=30)
    for number in (1, 2, 3):
        await ann.press("positive", message_id=card["message_id"])
        card = await ann.wait_for(
            showing(number + 1) if number < 3 else (lambda m: ALL_DONE in message_text(m)),
            timeout=10,
        )
    assert len(ann.messages) == 2  # the greeting and the card
    assert await bot.stop() == 0, bot.output


async def test_a_card_whose_item_timed_out_shows_a_fresh_one(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1, layout="card"))
    ann, bob = telegram.user(209, "Ann"), telegram.user(210, "Bob")
    await ann.send_text("/start")
    card = await ann.wait_for(showing(1))
    clock.advance(minutes=11)
    assert await store_of(bot).expire_leases() == 1
    await bob.send_text("/start")
    taken = await bob.wait_for(showing(1))
    assert taken["text"] == card["text"]  # Ann's item went to Bob
    await bob.press("positive", message_id=taken["message_id"])
    await bob.wait_for(showing(2))  # the second item, leased to Bob

    await ann.press("negative", message_id=card["message_id"])
    fresh = await ann.wait_for(lambda m: "text number 2" in message_text(m))
    assert fresh["message_id"] == card["message_id"] and "reply_markup" in fresh
    assert fresh["text"].startswith(texts.stale_card(None))
    assert (await ann.wait_alert())["text"] == texts.ALERTS[Rejection.EXPIRED]
    await settled(bot, telegram)
    assert await answers_in_db(bot) == 1


async def test_a_worker_who_blocked_the_bot_is_marked_inactive(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1, layout="card"))
    ann = telegram.user(211, "Ann")
    await ann.send_text("/start")
    card = await ann.wait_for(showing(1))
    telegram.block(ann.id)
    await ann.press("positive", message_id=card["message_id"])
    await settled(bot, telegram)
    async with store_of(bot).sessions() as session:
        status = await session.scalar(select(Worker.status).where(Worker.id == ann.id))
    assert status == WorkerStatus.INACTIVE
    assert await answers_in_db(bot) == 1
