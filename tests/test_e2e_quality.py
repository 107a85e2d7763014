"""Gold questions, disputes and qualification as a worker meets them in the chat."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser
from storage.models import Dispute
from tests.factories import LABELS, make_spec
from tests.test_e2e_worker import button_texts, newer_than, settled, store_of


def shape(params: dict[str, Any]) -> tuple[object, ...]:
    """What a send looks like with its content stripped: keys, keyboard layout, data format."""
    keyboard = params["reply_markup"]["inline_keyboard"]
    return (
        sorted(params),
        [
            [(b["text"], b["callback_data"].split(":")[0], len(b["callback_data"])) for b in row]
            for row in keyboard
        ],
        params["text"].split("\n\n")[0].split()[0],  # "Item"
    )


def item_sends(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [
        call.params
        for call in telegram.calls
        if call.method == "sendMessage" and str(call.params.get("text", "")).startswith("Item")
    ]


async def tap(user: FakeUser, label: str) -> dict[str, Any]:
    item = await user.wait_for(
        lambda m: "Skip" in button_texts(m) and m.get("text", "").startswith("Item")
    )
    await user.press(label, message_id=item["message_id"])
    await user.wait_for(newer_than(item["message_id"]))
    return item


async def test_gold_items_look_exactly_like_other_items(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=6, gold=6, overlap=1, gold_ratio=0.5))
    ann = telegram.user(101, "Ann")
    await ann.send_text("/start")
    for _ in range(10):
        await tap(ann, "positive")
    sends = item_sends(telegram)
    gold = [p for p in sends if "control" in p["text"]]
    regular = [p for p in sends if "text number" in p["text"]]
    assert gold and regular
    assert {repr(shape(p)) for p in gold} == {repr(shape(p)) for p in regular}
    everything_sent_before_feedback = " ".join(str(p) for p in sends)
    assert "why " not in everything_sent_before_feedback


async def test_wrong_gold_answer_explains_and_can_be_disputed_with_a_reason(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=2, gold=1, overlap=1, gold_ratio=1.0))
    ann = telegram.user(102, "Ann")
    await ann.send_text("/start")
    item = await tap(ann, "neutral")  # control 0 is "positive"
    assert "control 0" in item["text"]
    feedback = await ann.wait_for("expected answer")
    assert "“positive”" in feedback["text"] and "why 0" in feedback["text"]

    await ann.press("Dispute", message_id=feedback["message_id"])
    prompt = await ann.wait_for("Dispute #")
    [asked] = [c for c in telegram.calls if "Dispute #" in str(c.params.get("text"))]
    assert asked.params["reply_markup"]["force_reply"] is True  # the phone opens a reply
    await ann.send_text("It reads as neutral to me", reply_to=prompt)
    await ann.wait_for("a coordinator will review")
    await settled(bot, telegram)
    async with store_of(bot).sessions() as session:
        dispute = (await session.scalars(select(Dispute))).one()
    assert dispute.reason == "It reads as neutral to me"


async def test_right_gold_answer_is_confirmed_and_still_disputable(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec(items=2, gold=1, overlap=1, gold_ratio=1.0))
    ann = telegram.user(103, "Ann")
    await ann.send_text("/start")
    await tap(ann, "positive")
    feedback = await ann.wait_for("✅ Right")
    assert "“positive”" in feedback["text"] and "why 0" in feedback["text"]
    [[button]] = feedback["reply_markup"]["inline_keyboard"]
    assert button["text"] == "Dispute"


QUALIFIED = {"items": 3, "min_accuracy": 0.66}


async def test_qualification_pass_then_real_items(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    await store_of(bot).load_taskset(
        make_spec(items=3, gold=4, overlap=1, gold_ratio=0.0, qualification=QUALIFIED)
    )
    ann = telegram.user(104, "Ann")
    await ann.send_text("/start")
    for _ in range(3):
        item = await ann.wait_for(
            lambda m: m.get("text", "").startswith("Item") and "Skip" in button_texts(m)
        )
        control = int(item["text"].split("\n\n")[1].split()[-1])
        await ann.press(LABELS[control % 2], message_id=item["message_id"])  # the right answer
        await ann.wait_for(newer_than(item["message_id"]))
    assert "Training question. ✅ Right: “" in (await ann.wait_for("Training question"))["text"]
    await ann.wait_for("You passed the training")
    real = await ann.wait_for(lambda m: "text number" in m.get("text", ""))
    assert "reply_markup" in real


async def test_qualification_fail_is_told_kindly(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    await store_of(bot).load_taskset(
        make_spec(items=3, gold=4, overlap=1, gold_ratio=0.0, qualification=QUALIFIED)
    )
    bob = telegram.user(105, "Bob")
    await bob.send_text("/start")
    for _ in range(3):
        await tap(bob, "neutral")  # never a gold label in make_spec
    ending = await bob.wait_for("Thank you for trying")
    assert "0 of 3" in ending["text"]
    assert not any("text number" in text for text in bob.texts())
