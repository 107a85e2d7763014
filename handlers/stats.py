"""What a worker sees of their own standing: /me, /earnings, /leaderboard."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from handlers import texts
from handlers.services import Context
from storage.results import NoItem, NoItemReason

COMMANDS = [
    ("me", "My answers, accuracy and earnings"),
    ("earnings", "My balance, pending and paid"),
    ("leaderboard", "Top workers and my rank"),
]


async def me(update: Update, context: Context) -> None:
    """The worker's own numbers in their current set: answers, accuracy, rank, earnings."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    store = context.bot_data.store
    view = await store.current_taskset(user.id)
    ranked = await store.leaderboard(view.id) if view else []
    mine = next((rank for rank, s in enumerate(ranked, 1) if s.worker_id == user.id), None)
    if view is None or mine is None:
        await message.reply_text(texts.no_item(NoItem(NoItemReason.NO_TASKSET)))
        return
    await message.reply_text(texts.me(view, ranked[mine - 1], mine, len(ranked)))


async def leaderboard(update: Update, context: Context) -> None:
    """The top workers of the caller's set, under pseudonyms, and the caller's own rank."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    store = context.bot_data.store
    view = await store.current_taskset(user.id)
    if view is None:
        await message.reply_text(texts.no_item(NoItem(NoItemReason.NO_TASKSET)))
        return
    await message.reply_text(texts.leaderboard(view, await store.leaderboard(view.id), user.id))


async def earnings(update: Update, context: Context) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    await message.reply_text(texts.earnings(await context.bot_data.store.earnings(user.id)))


def register(application: Application) -> None:
    private = filters.ChatType.PRIVATE
    application.add_handlers(
        [
            CommandHandler("me", me, filters=private),
            CommandHandler("earnings", earnings, filters=private),
            CommandHandler("leaderboard", leaderboard, filters=private),
        ]
    )
