"""The baseline of ``answer_loop.py``: a bare python-telegram-bot 22 bot, no database.

It does per tap what labelbot does: answers the callback query, edits the item to show the
choice without buttons, and sends the next item with labelbot's keyboard shape (three labels,
then Skip and Not sure). ``/start`` sends the first item. Settings come from the same
environment variables as labelbot's (``LABELBOT_BOT_TOKEN``, ``LABELBOT_TELEGRAM_BASE_URL``);
SIGINT or SIGTERM stops it (PTB's ``run_polling``).

    .venv/bin/python benchmarks/bare_bot.py --transport httpx|aiohttp
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from typing import get_args
from urllib.parse import urlparse

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from bot.serve import serve_webhook, stop_signal
from bot.transport import TransportKind, build_requests

LABELS = ("positive", "negative", "neutral")
CHOICES = {"0": LABELS[0], "1": LABELS[1], "2": LABELS[2], "s": "Skipped", "u": "Not sure"}
QUESTION = "What is the sentiment?"


def item_keyboard() -> InlineKeyboardMarkup:
    token = secrets.token_urlsafe(12)  # the size of labelbot's lease token
    labels = [
        InlineKeyboardButton(text, callback_data=f"a:{token}:{index}")
        for index, text in enumerate(LABELS)
    ]
    return InlineKeyboardMarkup(
        [
            labels[:2],
            labels[2:],
            [
                InlineKeyboardButton("Skip", callback_data=f"a:{token}:s"),
                InlineKeyboardButton("Not sure", callback_data=f"a:{token}:u"),
            ],
        ]
    )


async def send_item(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    number = context.bot_data[chat_id] = context.bot_data.get(chat_id, 0) + 1
    body = f"Item {number}\n\nA short post to label, about as long as a tweet.\n\n{QUESTION}"
    await context.bot.send_message(chat_id, body, reply_markup=item_keyboard())


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_chat is not None:
        await send_item(context, update.effective_chat.id)


async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None or query.data is None or not isinstance(query.message, Message):
        return
    chosen = CHOICES.get(query.data.rpartition(":")[2], "?")
    await query.answer()
    await query.edit_message_text(
        f"{query.message.text}\n\n✓ Your answer: {chosen}", reply_markup=None
    )
    await send_item(context, query.from_user.id)


def build(transport: TransportKind) -> Application:
    # The same request objects and concurrency as labelbot's build_application.
    request, get_updates_request = build_requests(
        transport, get_updates_read_timeout=30.0, connection_pool_size=256
    )
    application = (
        ApplicationBuilder()
        .token(os.environ["LABELBOT_BOT_TOKEN"])
        .base_url(os.environ["LABELBOT_TELEGRAM_BASE_URL"])
        .request(request)
        .get_updates_request(get_updates_request)
        .concurrent_updates(True)
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(answer, pattern=r"^a:"))
    return application


async def serve_with_labelbots_webhook(application: Application) -> None:
    await serve_webhook(
        application,
        url=os.environ["LABELBOT_WEBHOOK_URL"],
        secret=os.environ["LABELBOT_WEBHOOK_SECRET"],
        listen="127.0.0.1",
        port=int(os.environ["LABELBOT_PORT"]),
        stop=stop_signal(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--transport", choices=get_args(TransportKind), default="httpx")
    parser.add_argument(
        "--webhook",
        choices=("ptb", "aiohttp"),
        help="take updates by webhook (LABELBOT_WEBHOOK_URL/SECRET, LABELBOT_PORT) from PTB's "
        "own server (tornado) or from labelbot's aiohttp one, instead of long polling",
    )
    args = parser.parse_args()
    application = build(args.transport)
    if args.webhook == "ptb":
        url = os.environ["LABELBOT_WEBHOOK_URL"]
        application.run_webhook(
            listen="127.0.0.1",
            port=int(os.environ["LABELBOT_PORT"]),
            url_path=urlparse(url).path.lstrip("/"),
            webhook_url=url,
            secret_token=os.environ["LABELBOT_WEBHOOK_SECRET"],
        )
    elif args.webhook == "aiohttp":
        asyncio.run(serve_with_labelbots_webhook(application))
    else:
        application.run_polling(poll_interval=0.0, timeout=10)


if __name__ == "__main__":
    main()
