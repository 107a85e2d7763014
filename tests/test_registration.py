"""Every command and every button of every handlers module reaches its own handler: the
catch-all for unclaimed buttons is registered once, after all of them, so it shadows none."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Update

from bot.app import HANDLER_MODULES, build_application
from bot.fakegram import FakeTelegram
from bot.settings import Settings
from handlers import registry
from handlers.registry import ButtonRoute, Routes
from handlers.services import Context, LabelBotApp

USER = {"id": 501, "is_bot": False, "first_name": "Ada"}
CHAT = {"id": 501, "type": "private", "first_name": "Ada"}


@pytest.fixture
async def application(telegram: FakeTelegram, tmp_path: Path) -> AsyncIterator[LabelBotApp]:
    """The real Application, initialised (commands need the bot's username) but not started."""
    settings = Settings(
        bot_token=telegram.token,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'labelbot.db'}",
        telegram_base_url=telegram.base_url,
        telegram_base_file_url=telegram.base_file_url,
    )
    application = build_application(settings, migrate=False)
    async with application:
        yield application


def tap(application: LabelBotApp, data: str) -> Update:
    return Update.de_json(
        {
            "update_id": 1,
            "callback_query": {
                "id": "q1",
                "from": USER,
                "chat_instance": "c1",
                "data": data,
                "message": {"message_id": 9, "date": 0, "chat": CHAT, "text": "Item 1"},
            },
        },
        application.bot,
    )


def command(application: LabelBotApp, name: str) -> Update:
    text = f"/{name}"
    return Update.de_json(
        {
            "update_id": 2,
            "message": {
                "message_id": 10,
                "date": 0,
                "chat": CHAT,
                "from": USER,
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
            },
        },
        application.bot,
    )


def first_handler(application: LabelBotApp, update: Update) -> object:
    """The callback PTB runs for ``update`` in the group of the labeling handlers."""
    for handler in application.handlers[0]:
        check = handler.check_update(update)
        if check is not None and check is not False:
            return handler.callback
    raise AssertionError(f"no handler takes {update}")


BUTTONS = [(route, module) for module in HANDLER_MODULES for route in module.buttons]
COMMANDS = [command for module in HANDLER_MODULES for command in module.commands]


@pytest.mark.parametrize("route", [route for route, _ in BUTTONS], ids=lambda r: r.example)
def test_every_button_reaches_its_handler(application: LabelBotApp, route: ButtonRoute) -> None:
    assert route.pattern.match(route.example), "the route's example must be data it claims"
    assert first_handler(application, tap(application, route.example)) is route.callback


@pytest.mark.parametrize("entry", COMMANDS, ids=lambda c: c.name)
def test_every_command_reaches_its_handler(application: LabelBotApp, entry: object) -> None:
    assert isinstance(entry, registry.Command)
    assert first_handler(application, command(application, entry.name)) is entry.callback


def test_an_unclaimed_button_gets_the_catch_all(application: LabelBotApp) -> None:
    assert first_handler(application, tap(application, "zz:old")) is registry.unclaimed_button
    assert application.handlers[0][-1].callback is registry.unclaimed_button


def test_a_module_registered_after_the_others_is_not_shadowed(application: LabelBotApp) -> None:
    async def coordinator_button(update: Update, context: Context) -> None:
        return None

    late = Routes(buttons=[ButtonRoute(re.compile(r"^c:\d+$"), coordinator_button, "c:1")])
    application.handlers.clear()
    registry.register(application, (*HANDLER_MODULES, late))
    assert first_handler(application, tap(application, "c:1")) is coordinator_button


def test_the_command_menu_lists_every_registered_command() -> None:
    menu = [entry.command for entry in registry.command_menu(HANDLER_MODULES)]
    assert menu == [entry.name for entry in COMMANDS]
    assert {"start", "next", "help", "me", "earnings", "leaderboard"} <= set(menu)
