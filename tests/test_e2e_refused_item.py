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
