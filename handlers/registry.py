"""What each audience's module handles, and the one place where all of it is registered.

A handlers module describes its commands (name, menu text, callback), its buttons (callback-data
pattern, callback, and an example of the data its buttons carry) and any other handlers in a
``Routes``. ``register`` adds every module's routes in order and then, once, the catch-all for
buttons nobody claims, so no module's button can be shadowed by it, whatever the order of the
modules. The command menu (``setMyCommands``) is made from the same commands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TypeVar

from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from handlers import texts
from handlers.services import Context, LabelBotApp
from storage.results import Rejection

Callback = Callable[[Update, Context], Coroutine[object, object, None]]
Decoded = TypeVar("Decoded")


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command in private chats, shown in the phone's command menu."""

    name: str
    description: str
    callback: Callback


@dataclass(frozen=True, slots=True)
class ButtonRoute:
    """Inline buttons whose callback data matches ``pattern``; ``example`` is such data (the
    registration test taps it to prove the button reaches ``callback``)."""

    pattern: re.Pattern[str]
    callback: Callback
    example: str


@dataclass(frozen=True, slots=True)
class Routes:
    """Everything one handlers module answers."""

    commands: Sequence[Command] = ()
    buttons: Sequence[ButtonRoute] = ()
    others: Sequence[BaseHandler[Update, Context, None]] = ()


async def answer_query(
    query: CallbackQuery, text: str | None = None, show_alert: bool = False
) -> None:
    """Answer a tap; a redelivered update finds its query answered already, and that is fine."""
    try:
        await query.answer(text, show_alert=show_alert)
    except BadRequest as error:
        if "query is too old" not in error.message.lower():
            raise


async def decoded_tap(
    update: Update, decode: Callable[[str], Decoded | None]
) -> tuple[CallbackQuery, Decoded] | None:
    """The tapped button's query and its decoded callback data; None for an update that is no
    tap, and for malformed (forged) data, which gets the "not valid" alert."""
    query = update.callback_query
    if query is None or query.data is None:
        return None
    data = decode(query.data)
    if data is None:
        await reject_tap(query)
        return None
    return query, data


async def reject_tap(query: CallbackQuery) -> None:
    await answer_query(query, texts.ALERTS[Rejection.FORGED], show_alert=True)


class RepliesToPrompt(filters.MessageFilter):
    """Messages that reply to one of the bot's prompts (its text matches one of ``patterns``).
    Any other message of a worker may be a typed answer, so a prompt's handler takes only
    these, and the typed answers' handler none of them."""

    def __init__(self, *patterns: re.Pattern[str]) -> None:
        super().__init__(name=f"RepliesToPrompt{tuple(p.pattern for p in patterns)!r}")
        self.patterns = patterns

    def filter(self, message: Message) -> bool:
        prompt = message.reply_to_message
        return (
            prompt is not None
            and prompt.from_user is not None
            and prompt.from_user.is_bot
            and any(pattern.match(prompt.text or "") for pattern in self.patterns)
        )


@dataclass(frozen=True, slots=True)
class PromptReply:
    """A worker's text reply to one of the bot's numbered prompts ("Dispute #12: ...")."""

    message: Message
    number: int  # the number the prompt names: a dispute, an answer, a review
    user_id: int
    text: str


def prompt_reply(update: Update, prompt: re.Pattern[str]) -> PromptReply | None:
    """The text reply to a prompt that ``prompt`` matches (its first group is the number), or
    None for anything else."""
    message = update.effective_message
    if message is None or message.reply_to_message is None or message.from_user is None:
        return None
    match = prompt.match(message.reply_to_message.text or "")
    if match is None or not message.text:
        return None
    return PromptReply(message, int(match.group(1)), message.from_user.id, message.text)


def register(application: LabelBotApp, modules: Sequence[Routes]) -> None:
    """Add every module's handlers, then the catch-all for unclaimed buttons, last."""
    private = filters.ChatType.PRIVATE
    for routes in modules:
        application.add_handlers(
            [
                *(CommandHandler(c.name, c.callback, filters=private) for c in routes.commands),
                *(CallbackQueryHandler(b.callback, pattern=b.pattern) for b in routes.buttons),
                *routes.others,
            ]
        )
    application.add_handler(CallbackQueryHandler(unclaimed_button))


def command_menu(modules: Sequence[Routes]) -> list[BotCommand]:
    return [BotCommand(c.name, c.description) for routes in modules for c in routes.commands]


async def unclaimed_button(update: Update, context: Context) -> None:
    """A button no module claims: an old keyboard of an earlier version, or forged data."""
    if update.callback_query is not None:
        await reject_tap(update.callback_query)
