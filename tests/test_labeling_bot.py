"""LabelingBot's unparsed calls behave like PTB's own for everything but the return value."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import AIORateLimiter

from bot.fakegram import FakeTelegram
from bot.transport import build_requests
from handlers.labeling_bot import Button, InlineKeyboard, LabelingBot

TOKEN = "123456:TEST-TOKEN"
USER_ID = 4242
KEYBOARD = InlineKeyboard(inline_keyboard=[[Button(text="Positive", callback_data="a")]])


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as fake:
        yield fake


def labeling_bot(telegram: FakeTelegram, rate_limiter: AIORateLimiter | None = None) -> LabelingBot:
    request, get_updates_request = build_requests(
        "aiohttp", get_updates_read_timeout=5.0, connection_pool_size=4
    )
    return LabelingBot(
        TOKEN,
        base_url=telegram.base_url,
        base_file_url=telegram.base_file_url,
        request=request,
        get_updates_request=get_updates_request,
        rate_limiter=rate_limiter,
    )


async def test_send_and_replace_reach_the_chat_like_ptbs_own_calls(telegram: FakeTelegram) -> None:
    ann = telegram.user(USER_ID)
    async with labeling_bot(telegram) as bot:
        await bot.send_text(USER_ID, "Item 1", KEYBOARD)
        sent = ann.last
        assert sent["text"] == "Item 1"
        assert sent["reply_markup"] == {
            "inline_keyboard": [[{"text": "Positive", "callback_data": "a"}]]
        }

        await bot.replace_text(USER_ID, sent["message_id"], "Item 1\n\nYour answer: Positive")

        assert ann.last["message_id"] == sent["message_id"]
        assert ann.last["text"] == "Item 1\n\nYour answer: Positive"
        assert "reply_markup" not in ann.last  # the buttons are gone


async def test_telegrams_errors_surface_as_ptbs_exceptions(telegram: FakeTelegram) -> None:
    ann = telegram.user(USER_ID)
    async with labeling_bot(telegram) as bot:
        await bot.send_text(USER_ID, "same")
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.replace_text(USER_ID, ann.last["message_id"], "same")
        telegram.fail_next("sendMessage", 429, retry_after=3)
        with pytest.raises(RetryAfter):
            await bot.send_text(USER_ID, "later")
        telegram.block(USER_ID)
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_text(USER_ID, "anyone there?")


async def test_the_rate_limiter_retries_a_429(telegram: FakeTelegram) -> None:
    ann = telegram.user(USER_ID)
    async with labeling_bot(telegram, AIORateLimiter(max_retries=1)) as bot:
        telegram.fail_next("sendMessage", 429, retry_after=1)
        await bot.send_text(USER_ID, "after the wait")
    assert ann.last["text"] == "after the wait"


@pytest.mark.parametrize("kind", ["image", "audio", "video"])
async def test_media_goes_out_by_kind_with_caption_and_buttons(
    telegram: FakeTelegram, kind: str
) -> None:
    ann = telegram.user(USER_ID)
    field = {"image": "photo", "audio": "audio", "video": "video"}[kind]
    async with labeling_bot(telegram) as bot:
        await bot.send_media(USER_ID, kind, f"https://example.org/item.{kind}", "Item 1", KEYBOARD)
    sent = ann.last
    assert field in sent
    assert sent["caption"] == "Item 1"
    assert sent["reply_markup"]["inline_keyboard"][0][0]["text"] == "Positive"
