"""A worker's own data: /mydata sends all of it as a JSON file; /delete erases the personal
part after a confirmation button, keeping the work anonymised (``storage/privacy.py``)."""

from __future__ import annotations

import json
from datetime import date
from enum import Enum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from handlers import texts
from handlers.callbacks import ERASE_PATTERN, decode_erase, encode_erase
from handlers.registry import ButtonRoute, Command, Routes, answer_query, decoded_tap
from handlers.services import Context

# The confirm button works this long after /delete; an older one asks to send /delete again.
CONFIRM_SECONDS = 600


def json_value(value: object) -> object:
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


async def mydata(update: Update, context: Context) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    data = await context.bot_data.store.privacy.export(user.id)
    if data is None:
        await message.reply_text(texts.UNKNOWN_PERSON)
        return
    payload = json.dumps(data, ensure_ascii=False, indent=2, default=json_value).encode()
    await context.bot.send_document(
        user.id, document=payload, filename=texts.MYDATA_FILE, caption=texts.MYDATA_CAPTION
    )


async def delete(update: Update, context: Context) -> None:
    """Say what would be erased and what kept, and ask for a tap to confirm."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    store = context.bot_data.store
    if await store.standing.settings(user.id) is None:
        await message.reply_text(texts.UNKNOWN_PERSON)
        return
    unpaid = texts.unpaid_text(await store.ledger.balances(user.id))
    asked_at = int(store.clock().timestamp())
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(texts.DELETE_BUTTON, callback_data=encode_erase(asked_at))],
            [InlineKeyboardButton(texts.KEEP_BUTTON, callback_data=encode_erase(None))],
        ]
    )
    await message.reply_text(texts.delete_confirm(unpaid), reply_markup=keyboard)


async def confirm_delete(update: Update, context: Context) -> None:
    tap = await decoded_tap(update, decode_erase)
    if tap is None:
        return
    query, asked_at = tap
    await answer_query(query)
    store = context.bot_data.store
    if not isinstance(asked_at, int):  # "no": keep it
        reply = texts.DELETE_KEPT
    elif not 0 <= store.clock().timestamp() - asked_at <= CONFIRM_SECONDS:
        reply = texts.DELETE_STALE
    else:
        erased = await store.privacy.erase(query.from_user.id)
        reply = (
            texts.UNKNOWN_PERSON
            if erased is None
            else texts.deleted(erased.answers, erased.ledger_entries)
        )
    if isinstance(query.message, Message):
        await query.message.edit_text(reply, reply_markup=None)
    else:
        await context.bot.send_message(query.from_user.id, reply)


ROUTES = Routes(
    commands=[
        Command("mydata", "Everything stored about me, as a file", mydata),
        Command("delete", "Erase my personal data", delete),
    ],
    buttons=[ButtonRoute(ERASE_PATTERN, confirm_delete, example=encode_erase(1767225600))],
)
