"""Telegram misbehaves: 5xx, 429 and lost replies. The bot keeps running and loses nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from telegram.error import NetworkError

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram
from storage.models import Answer
from tests.conftest import Clock, running_bot
from tests.factories import make_spec
from tests.test_e2e_worker import store_of


async def stored_answers(bot: LabelBotApp) -> int:
    async with store_of(bot).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Answer)) or 0)


async def test_a_failed_send_is_logged_and_the_worker_can_go_on(
    bot: LabelBotApp, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    await store_of(bot).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(201, "Ann")
    await ann.send_text("/start")
    first = await ann.wait_for("Item 1")
    telegram.fail_next("sendMessage", 500, chat_id=201)  # the next item is lost on the way
    tap = await ann.press("positive", message_id=first["message_id"])
    await ann.wait_for("something went wrong")  # told, and asked to go on
    [logged] = [r for r in caplog.records if r.name == "bot.app" and r.levelno >= logging.WARNING]
    assert (logged.levelno, logged.getMessage()) == (logging.ERROR, f"update {tap} failed")
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], NetworkError)
    assert not any("Item 2" in text for text in ann.texts())

    await ann.send_text("/next")  # as the message says
    await ann.wait_for("Item 2")
    assert await stored_answers(bot) == 1


@pytest.fixture
async def rate_limited_bot(
    telegram: FakeTelegram, db_url: str, clock: Clock
) -> AsyncIterator[LabelBotApp]:
    """The production setting: PTB's AIORateLimiter, which retries after a 429."""
    async with running_bot(telegram, db_url, clock) as application:
        yield application


async def test_too_many_requests_is_waited_out_and_retried(
    rate_limited_bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(rate_limited_bot).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(202, "Ann")
    await ann.send_text("/start")
    first = await ann.wait_for("Item 1")
    telegram.fail_next("editMessageText", 429, retry_after=1, chat_id=202)
    await ann.press("negative", message_id=first["message_id"])
    edited = await ann.wait_for(lambda m: "Your answer: negative" in m.get("text", ""), timeout=10)
    assert edited["message_id"] == first["message_id"]
    await ann.wait_for("Item 2")
    failed = [c for c in telegram.calls if c.method == "editMessageText"]
    assert len(failed) == 2  # the 429, then the retry
    assert await stored_answers(rate_limited_bot) == 1
