"""A worker labels in Telegram: the real Application against the fake Bot API, both transports."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser
from bot.fakegram.rendering import buttons
from handlers import texts
from handlers.services import Services
from storage.models import Answer, LedgerEntry, Worker, WorkerStatus
from tests.conftest import Clock
from tests.factories import LABELS, make_spec

ALL_DONE = "All done"


def store_of(bot: LabelBotApp) -> Any:
    services: Services = bot.bot_data
    return services.store


async def settled(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    """Wait until the bot has fetched every update sent so far and finished handling each."""
    await telegram.wait_idle()
    # The poller confirms updates as it queues them; the queue counts each done once handled.
    async with asyncio.timeout(5):
        await bot.update_queue.join()


async def answers_in_db(bot: LabelBotApp) -> int:
    async with store_of(bot).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Answer)) or 0)


def newer_than(message_id: int) -> Callable[[dict[str, Any]], bool]:
    """Matches the bot's messages sent after message ``message_id``."""
    return lambda message: message["message_id"] > message_id


def button_texts(message: dict[str, Any]) -> list[str]:
    return [button["text"] for button in buttons(message)]


def item_messages(user: FakeUser) -> list[dict[str, Any]]:
    return [
        m for m in user.messages if (m.get("text") or m.get("caption") or "").startswith("Item")
    ]


async def label_until_done(user: FakeUser, choose: str = LABELS[0], limit: int = 100) -> int:
    """Tap ``choose`` on each item until the bot says all is done; returns taps made."""
    taps = 0
    while taps < limit:
        last = await user.wait_for(
            lambda m: "Skip" in button_texts(m) or ALL_DONE in m.get("text", "")
        )
        if ALL_DONE in last.get("text", ""):
            return taps
        await user.press(choose, message_id=last["message_id"])
        taps += 1
        await user.wait_for(newer_than(last["message_id"]))
    raise AssertionError("the worker never reached the end")


async def test_three_workers_label_a_set_to_the_end(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=20, overlap=2))
    workers = [telegram.user(uid, f"Worker{uid}") for uid in (11, 12, 13)]
    for user in workers:
        await user.send_text("/start")
        await user.wait_for("Item 1")

    taps = 0
    for user in workers:
        taps += await label_until_done(user)

    assert taps == 40
    assert await answers_in_db(bot) == 40
    for user in workers:
        assert ALL_DONE in user.last["text"]
        bodies = [m.get("text", "").split("\n\n")[1] for m in item_messages(user)]
        assert len(bodies) == len(set(bodies)), "a worker saw an item twice"
        # Every answered item shows the choice, and of its buttons only Undo is left.
        for message in item_messages(user):
            assert "Your answer: positive" in message["text"]
            assert button_texts(message) == [texts.UNDO_BUTTON]


async def test_item_message_has_label_skip_and_unsure_buttons(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=2, overlap=1))
    ann = telegram.user(21, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1")
    buttons = [b for row in item["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == [*LABELS, "Skip", "Not sure"]
    for button in buttons:
        assert len(button["callback_data"].encode()) <= 64
    greeting = ann.messages[0]["text"]
    assert "Pick the feeling the author expresses" in greeting


async def test_same_update_twice_and_double_tap_store_one_answer(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    clock.step = timedelta(0)  # the repeats come at once, as a double tap does
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(31, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1")

    update_id = await ann.press("negative", message_id=item["message_id"])
    await ann.wait_for("Item 2")
    telegram.redeliver(update_id)  # Telegram re-sends after a crash: same update, same id
    await ann.press_data(
        item["reply_markup"]["inline_keyboard"][0][0]["callback_data"], item["message_id"]
    )
    await settled(bot, telegram)

    assert await answers_in_db(bot) == 1
    assert ann.alerts[-1]["text"] == "Already recorded – thanks!"
    assert len(item_messages(ann)) == 2  # no extra item was sent for the repeats
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(func.sum(LedgerEntry.amount_minor))) == 2


async def test_retap_after_no_reaction_shows_the_choice_and_current_item_again(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    """The reply to a tap was lost (say the process died after storing the answer); the worker
    taps again a while later and must not be left stuck with an alert only."""
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(35, "Ann")
    await ann.send_text("/start")
    first = await ann.wait_for("Item 1")
    data = first["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await ann.press("positive", message_id=first["message_id"])
    second = await ann.wait_for("Item 2")

    clock.advance(seconds=30)
    await ann.press_data(data, first["message_id"])
    again = await ann.wait_for(lambda m: m["message_id"] > second["message_id"])
    await settled(bot, telegram)

    assert again["text"] == second["text"]  # the same lease, shown again
    assert again["reply_markup"] == second["reply_markup"]
    assert ann.alerts[-1]["text"] == "Already recorded – thanks!"
    assert await answers_in_db(bot) == 1


async def test_forged_and_foreign_buttons_get_an_alert(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=2))
    ann, bob = telegram.user(41, "Ann"), telegram.user(42, "Bob")
    await ann.send_text("/start")
    ann_item = await ann.wait_for("Item 1")
    await bob.send_text("/start")
    bob_item = await bob.wait_for("Item 1")

    await ann.press_data("a:AAAAAAAAAAAAAAAA:0", ann_item["message_id"])
    assert (await ann.wait_alert())["text"] == "This button is not valid any more."
    ann_data = ann_item["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await bob.press_data(ann_data, bob_item["message_id"])
    assert (await bob.wait_alert())["text"] == "This button belongs to someone else's item."
    await ann.press_data("garbage", ann_item["message_id"])
    await settled(bot, telegram)
    assert len([a for a in ann.alerts if a.get("show_alert")]) == 2
    assert await answers_in_db(bot) == 0


async def test_gold_answer_never_leaves_the_server_before_the_tap(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = make_spec(items=0, gold=4, overlap=1, gold_ratio=1.0)
    await store_of(bot).load_taskset(spec)
    controls = {str(item.text): (str(item.gold), str(item.explanation)) for item in spec.items}
    ann = telegram.user(51, "Ann")
    await ann.send_text("/start")

    explained: set[str] = set()
    for number in range(1, len(controls) + 1):
        item = await ann.wait_for(f"Item {number}\n")
        label, explanation = controls[item["text"].split("\n\n")[1]]
        sent = json.dumps([call.params for call in telegram.calls])
        assert {why for _, why in controls.values() if why in sent} == explained
        assert label not in item["text"]
        # Every answer button is a lease token and a choice index: no label, no gold marker.
        data = [b["callback_data"] for row in item["reply_markup"]["inline_keyboard"] for b in row]
        assert [re.sub(r"^a:[\w-]+:", "", d) for d in data] == ["0", "1", "2", "s", "u"]
        assert len({d.split(":")[1] for d in data}) == 1
        await ann.press("neutral", message_id=item["message_id"])
        await ann.wait_for(explanation)
        explained.add(explanation)


async def test_blocked_worker_is_marked_inactive(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(61, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1")
    telegram.block(61)
    await ann.press("positive", message_id=item["message_id"])
    await settled(bot, telegram)
    async with store_of(bot).sessions() as session:
        status = await session.scalar(select(Worker.status).where(Worker.id == 61))
    assert status == WorkerStatus.INACTIVE
    assert await answers_in_db(bot) == 1  # the tap itself was stored before the send failed


async def test_commands_are_registered_for_the_phone_menu(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    calls = [call for call in telegram.calls if call.method == "setMyCommands"]
    assert calls
    names = [command["command"] for command in calls[-1].params["commands"]]
    assert {"start", "next", "guidelines", "help"} <= set(names)


async def test_nothing_to_label_says_so(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    ann = telegram.user(71, "Ann")
    await ann.send_text("/start")
    assert "nothing to label" in (await ann.wait_for("nothing"))["text"]


async def test_deep_link_joins_the_named_set(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    await store_of(bot).load_taskset(make_spec("first", items=2))
    await store_of(bot).load_taskset(make_spec("second", items=2))
    ann = telegram.user(81, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Which task")
    await ann.send_text("/start second")
    assert "“Second”" in (await ann.wait_for("You are labeling"))["text"]
    await ann.wait_for("Item 1")


async def test_media_items_arrive_as_photo_with_caption(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = make_spec(items=1)
    photo = spec.items[0].model_copy(update={"image": "https://example.org/cat.jpg"})
    spec = spec.model_copy(update={"items": [photo]})
    await store_of(bot).load_taskset(spec)
    ann = telegram.user(91, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for(lambda m: "photo" in m)
    assert item["caption"].startswith("Item 1")
    await ann.press("neutral", message_id=item["message_id"])
    edited = await ann.wait_for(lambda m: "Your answer: neutral" in m.get("caption", ""))
    assert button_texts(edited) == [texts.UNDO_BUTTON]


async def test_me_shows_answers_accuracy_and_earnings(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(95, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1")
    await ann.press("positive", message_id=item["message_id"])
    await ann.wait_for("Item 2")
    await ann.send_text("/me")
    summary = (await ann.wait_for("Answers:"))["text"]
    assert "Answers: 1 today, 1 in total" in summary
    assert "Rank: #1 of 1" in summary
    assert "Earnings: 0.02 USD available, 0.00 USD pending" in summary
    assert "no control questions answered yet" in summary


async def test_choosing_a_set_from_the_buttons(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    await store_of(bot).load_taskset(make_spec("first", items=2))
    await store_of(bot).load_taskset(make_spec("second", items=2))
    ann = telegram.user(96, "Ann")
    await ann.send_text("/start")
    choice = await ann.wait_for("Which task")
    await ann.press("Second", message_id=choice["message_id"])
    assert "“Second”" in (await ann.wait_for("You are labeling"))["text"]
    item = await ann.wait_for("Item 1")
    assert item["text"].split("\n\n")[1].startswith("text number")


async def test_leaderboard_is_pseudonymous_and_shows_own_rank(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=6, overlap=2))
    ann, bob = telegram.user(97, "Ann", username="ann_real"), telegram.user(98, "Bob")
    for user, taps in ((ann, 1), (bob, 2)):
        await user.send_text("/start")
        for n in range(1, taps + 1):
            item = await user.wait_for(f"Item {n}")
            await user.press("positive", message_id=item["message_id"])
        await user.wait_for(f"Item {taps + 1}")
    await ann.send_text("/leaderboard")
    board = (await ann.wait_for("🏆"))["text"]
    lines = board.splitlines()
    assert lines[1].startswith("1. Worker ") and "2 answers" in lines[1]  # Bob, not named
    assert lines[2].startswith("2. you – 1 answers")
    assert "Bob" not in board and "ann_real" not in board


async def test_earnings_sum_the_ledger(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    await store_of(bot).load_taskset(make_spec(items=4, overlap=1, reward="0.05"))
    ann = telegram.user(99, "Ann")
    await ann.send_text("/earnings")
    assert "No earnings yet" in (await ann.wait_for("No earnings"))["text"]
    await ann.send_text("/start")
    for n in (1, 2, 3):
        item = await ann.wait_for(f"Item {n}")
        await ann.press("Skip" if n == 2 else "negative", message_id=item["message_id"])
    await ann.wait_for("Item 4")
    await ann.send_text("/earnings")
    summary = (await ann.wait_for("Your earnings"))["text"]
    assert "Available: 0.10 USD" in summary  # two labels paid, the skip not
    assert "Pending: 0.00 USD" in summary
    assert "Paid out: 0.00 USD" in summary
    assert summary.count("+0.05 USD answer in “Sentiment”") == 2


async def test_a_caption_too_long_for_media_follows_as_its_own_message(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    """Telegram allows 1024 characters in a caption: a longer item text goes out as a text
    message with the buttons, right after the media."""
    spec = make_spec(items=1)
    video = spec.items[0].model_copy(
        update={"video": "https://example.org/clip.mp4", "text": "A long story. " * 100}
    )
    await store_of(bot).load_taskset(spec.model_copy(update={"items": [video]}))
    ann = telegram.user(92, "Ann")
    await ann.send_text("/start")
    item = await ann.wait_for(lambda m: "Item 1" in m.get("text", "") and "reply_markup" in m)
    media = [m for m in ann.messages if "video" in m]
    assert len(media) == 1 and "caption" not in media[0] and "reply_markup" not in media[0]
    assert media[0]["message_id"] < item["message_id"]
    await ann.press("neutral", message_id=item["message_id"])
    await ann.wait_for(lambda m: "Your answer: neutral" in m.get("text", ""))
