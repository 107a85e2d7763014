"""labelbot's webhook server: only Telegram's secret gets in, and updates are processed within
the application's limit on concurrent updates before the 200 goes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import Bot, Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.fakegram import FakeTelegram
from bot.webhook import SECRET_HEADER, WebhookServer

SECRET = "right-secret_1"
SAFETY_TIMEOUT = 30.0


class Handled:
    """Updates running in the handler (held there until released) and finished."""

    def __init__(self) -> None:
        self.running: list[int] = []
        self.finished: list[int] = []
        self.release = asyncio.Event()
        self._started = asyncio.Event()

    async def handle(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        self.running.append(update.update_id)
        self._started.set()
        await self.release.wait()
        self.running.remove(update.update_id)
        self.finished.append(update.update_id)

    async def until_running(self, update_id: int) -> None:
        async with asyncio.timeout(SAFETY_TIMEOUT):
            while update_id not in self.running:
                self._started.clear()
                await self._started.wait()


def make_application(telegram: FakeTelegram, handled: Handled) -> Application:
    """An application that processes one update at a time."""
    application = (
        ApplicationBuilder()
        .bot(Bot(telegram.token, base_url=telegram.base_url))
        .updater(None)
        .concurrent_updates(1)
        .build()
    )
    application.add_handler(TypeHandler(Update, handled.handle))
    return application


@pytest.fixture
def handled() -> Handled:
    return Handled()


@pytest.fixture
async def server(telegram: FakeTelegram, handled: Handled) -> AsyncIterator[WebhookServer]:
    application = make_application(telegram, handled)
    async with application:
        server = WebhookServer(application, secret=SECRET, listen="127.0.0.1", port=0)
        await server.start()
        yield server
        handled.release.set()
        await server.stop()


def update(update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "hi"},
    }


async def post(server: WebhookServer, body: dict[str, Any], headers: dict[str, str]) -> int:
    url = f"http://127.0.0.1:{server.port}{server.path}"
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as reply:
        return reply.status


@pytest.mark.parametrize("secret", ["", "has space", "x" * 257])
def test_the_server_refuses_to_start_without_a_usable_secret(
    telegram: FakeTelegram, handled: Handled, secret: str
) -> None:
    application = make_application(telegram, handled)
    with pytest.raises(ValueError, match="secret"):
        WebhookServer(application, secret=secret, listen="127.0.0.1", port=0)


@pytest.mark.parametrize(
    "headers",
    [{}, {SECRET_HEADER: ""}, {SECRET_HEADER: "wrong-secret"}],
    ids=["no-header", "empty-header", "wrong-secret"],
)
async def test_a_request_without_the_secret_is_refused_and_not_processed(
    server: WebhookServer, handled: Handled, headers: dict[str, str]
) -> None:
    assert await post(server, update(1), headers) == 403
    assert server.updates == 0 and handled.running == handled.finished == []


async def test_an_update_with_the_secret_is_answered_after_it_was_processed(
    server: WebhookServer, handled: Handled
) -> None:
    handled.release.set()
    assert await post(server, update(7), {SECRET_HEADER: SECRET}) == 200
    assert handled.finished == [7]


async def test_updates_beyond_the_concurrency_limit_wait_for_a_free_slot(
    server: WebhookServer, handled: Handled
) -> None:
    first = asyncio.create_task(post(server, update(1), {SECRET_HEADER: SECRET}))
    await handled.until_running(1)
    second = asyncio.create_task(post(server, update(2), {SECRET_HEADER: SECRET}))
    async with asyncio.timeout(SAFETY_TIMEOUT):
        # The server has no event for an arrival; it hands the update on without yielding.
        while server.updates < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    assert handled.running == [1]  # the limit is 1: update 2 waits for update 1
    handled.release.set()
    assert await first == await second == 200
    assert handled.finished == [1, 2]
