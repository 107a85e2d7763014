"""An item Telegram refuses to show never traps a worker: it is set aside with the reason, its
lease goes back, and the worker gets the next item at once."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import update

from bot.app import LabelBotApp
from bot.cli import main
from bot.fakegram import FakeTelegram
from storage.models import Item
from tests.factories import LABELS, make_spec

LONG_TEXT = "x" * 4090  # under the 4,096 a text may have; too long with "Item 1" and the question


async def test_an_item_telegram_refuses_is_set_aside_and_the_next_one_is_served(
    bot: LabelBotApp,
    telegram: FakeTelegram,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = bot.bot_data.store
    taskset_id = await store.load_taskset(make_spec(items=3, overlap=1))
    # A set loaded before the loader checked the rendered length: its first item cannot be sent.
    async with store.sessions.begin() as session:
        await session.execute(update(Item).where(Item.external_id == "t0").values(text=LONG_TEXT))
    ann = telegram.user(31, "Ann")

    with caplog.at_level(logging.WARNING, logger="handlers.worker"):
        await ann.send_text("/start")
        first = await ann.wait_for("Item 1")

    assert "text number 1" in first["text"]
    assert not any("Sorry" in text for text in ann.texts())
    assert await store.items_set_aside(taskset_id) == [("t0", "Message is too long")]
    assert any(
        "refused an item of task set sentiment" in record.getMessage()
        and "Message is too long" in record.getMessage()
        for record in caplog.records
    )
    assert set((await store.consistency_violations()).values()) == {0}

    # /next shows the live lease again, and the refused item never comes back.
    await ann.send_text("/next")
    again = await ann.wait_for(
        lambda m: m["message_id"] > first["message_id"] and "Item" in m.get("text", "")
    )
    assert "text number 1" in again["text"]
    await ann.press(LABELS[0], message_id=again["message_id"])
    second = await ann.wait_for("text number 2")
    await ann.press(LABELS[0], message_id=second["message_id"])
    await ann.wait_for("All done")
    assert not any(LONG_TEXT in text for text in ann.texts())
    progress = {row.name: row for row in await store.taskset_progress()}
    assert progress["sentiment"].set_aside == 1

    # The coordinator sees which item was set aside and why.
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--database-url", db_url, "tasksets"]) == 0
    assert "set aside, Telegram refused to show them: t0 (Message is too long)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_a_review_telegram_refuses_is_set_aside_for_that_reviewer_only(
    bot: LabelBotApp,
    telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
    layout: str,
) -> None:
    store = bot.bot_data.store
    rule = {"sample": 1.0, "min_answers": 1, "min_gold_accuracy": 0.0}
    spec = make_spec(items=4, overlap=1, review=rule, layout=layout)
    photo = spec.items[0].model_copy(update={"image": "https://example.org/0.jpg"})
    taskset_id = await store.load_taskset(
        spec.model_copy(update={"items": [photo, *spec.items[1:]]})
    )
    ann, bob = telegram.user(41, "Ann"), telegram.user(42, "Bob")
    await ann.send_text("/start")
    await ann.press(LABELS[0], message_id=(await ann.wait_for("Item 1"))["message_id"])
    await ann.wait_for("text number 1")  # she labels on: only her own answer waits

    # Bob's phone cannot show the photo (a bad media answer is a 400 that blames no chat).
    refusal = "Bad Request: wrong type of the web page content"
    telegram.fail_next("sendPhoto", 400, refusal, times=9, chat_id=42)
    with caplog.at_level(logging.WARNING, logger="handlers.worker"):
        await bob.send_text("/start")
        await bob.press(LABELS[1], message_id=(await bob.wait_for("Item 1"))["message_id"])
        following = await bob.wait_for("Item 2")

    # Not shown again: he got the next task (no review left for him: an item), no error.
    assert "text number" in (following.get("text") or "")
    assert not any("Sorry" in text for text in bob.texts())
    assert sum(c.method == "sendPhoto" and c.params["chat_id"] == 42 for c in telegram.calls) == 1
    [logged] = [r.getMessage() for r in caplog.records if "refused review" in r.getMessage()]
    assert "review 1 of task set sentiment to reviewer 42 (Wrong type" in logged
    await bob.send_text("/next")
    await bob.wait_for(lambda m: m["message_id"] > following["message_id"] and "Item 2" in str(m))
    assert not any(text.startswith("Review") for text in bob.texts())

    # Ann's answer still waits for a review, by anyone else: Bob's and hers.
    state = await store.reviews.state(taskset_id)
    assert (state.waiting, state.done) == (2, 0)
    assert set((await store.consistency_violations()).values()) == {0}
