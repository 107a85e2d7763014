"""A worker's /settings: the name shown on leaderboards (a pseudonym unless they opt in to
their first name) and whether they get a message when a new task set opens."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from handlers import texts
from handlers.callbacks import NOTIFY_PATTERN, SHOW_NAME_PATTERN, decode_parts, encode_parts
from handlers.registry import ButtonRoute, Command, Routes, answer_query, decoded_tap
from handlers.services import Context
from storage.standing import WorkerSettings


def settings_view(found: WorkerSettings) -> tuple[str, InlineKeyboardMarkup]:
    shows_name = found.public_name is not None
    text = texts.settings_text(
        texts.name_settings(found.public_name, found.pseudonym), found.notify
    )
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    texts.HIDE_NAME_BUTTON if shows_name else texts.SHOW_NAME_BUTTON,
                    callback_data=encode_parts("sp", int(not shows_name)),
                )
            ],
            [
                InlineKeyboardButton(
                    texts.notify_button(found.notify),
                    callback_data=encode_parts("sn", int(not found.notify)),
                )
            ],
        ]
    )
    return text, keyboard


async def settings(update: Update, context: Context) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    found = await context.bot_data.store.standing.settings(user.id)
    if found is None:
        await message.reply_text(texts.NOT_A_WORKER)
        return
    text, keyboard = settings_view(found)
    await message.reply_text(text, reply_markup=keyboard)


async def toggle_name(update: Update, context: Context) -> None:
    """Show the tapper's first name on the boards ("1"), or their pseudonym again ("0")."""
    tap = await decoded_tap(update, lambda data: decode_parts(SHOW_NAME_PATTERN, data))
    if tap is None:
        return
    query, (wanted,) = tap
    standing = context.bot_data.store.standing
    user = query.from_user
    await standing.show_name(user.id, user.first_name if wanted == "1" else None)
    await refresh(update, context)


async def toggle_notify(update: Update, context: Context) -> None:
    """Messages about new task sets on ("1") or off ("0")."""
    tap = await decoded_tap(update, lambda data: decode_parts(NOTIFY_PATTERN, data))
    if tap is None:
        return
    query, (wanted,) = tap
    await context.bot_data.store.standing.set_notify(query.from_user.id, wanted == "1")
    await refresh(update, context)


async def refresh(update: Update, context: Context) -> None:
    """Show the settings as they are now in the message whose button was tapped."""
    query = update.callback_query
    assert query is not None
    found = await context.bot_data.store.standing.settings(query.from_user.id)
    await answer_query(query)
    if found is None or not isinstance(query.message, Message):
        return
    text, keyboard = settings_view(found)
    try:
        await query.message.edit_text(text, reply_markup=keyboard)
    except BadRequest as error:  # a repeated tap: the message says so already
        if "not modified" not in error.message.lower():
            raise


ROUTES = Routes(
    commands=[Command("settings", "My name on leaderboards, new-task messages", settings)],
    buttons=[
        ButtonRoute(SHOW_NAME_PATTERN, toggle_name, example=encode_parts("sp", 1)),
        ButtonRoute(NOTIFY_PATTERN, toggle_notify, example=encode_parts("sn", 0)),
    ],
)
