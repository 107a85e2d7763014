"""What a worker sees of their own standing: /me, /earnings, /leaderboard."""

from __future__ import annotations

from telegram import Message, Update

from handlers import texts
from handlers.registry import Command, Routes
from handlers.services import Context
from storage.results import NoItem, NoItemReason, TaskSetView, WorkerScore

NO_SET = texts.no_item(NoItem(NoItemReason.NO_TASKSET))


async def standings(
    update: Update, context: Context
) -> tuple[int, Message, TaskSetView, list[WorkerScore]] | None:
    """The caller, their chat message, their current set and its workers ranked best first;
    None (after telling them to pick a set) when they are on no set."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return None
    store = context.bot_data.store
    view = await store.current_taskset(user.id)
    if view is None:
        await message.reply_text(NO_SET)
        return None
    return user.id, message, view, await store.leaderboard(view.id)


async def me(update: Update, context: Context) -> None:
    """The worker's own numbers in their current set: answers, accuracy, rank, earnings."""
    found = await standings(update, context)
    if found is None:
        return
    worker_id, message, view, ranked = found
    mine = next((rank for rank, s in enumerate(ranked, 1) if s.worker_id == worker_id), None)
    if mine is None:  # joined but never served: not ranked yet
        await message.reply_text(NO_SET)
        return
    await message.reply_text(texts.me(view, ranked[mine - 1], mine, len(ranked)))


async def leaderboard(update: Update, context: Context) -> None:
    """The top workers of the caller's set, under pseudonyms, and the caller's own rank."""
    found = await standings(update, context)
    if found is not None:
        worker_id, message, view, ranked = found
        await message.reply_text(texts.leaderboard(view, ranked, worker_id))


async def earnings(update: Update, context: Context) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    await message.reply_text(texts.earnings(await context.bot_data.store.earnings(user.id)))


ROUTES = Routes(
    commands=[
        Command("me", "My answers, accuracy and earnings", me),
        Command("earnings", "My balance, pending and paid", earnings),
        Command("leaderboard", "Top workers and my rank", leaderboard),
    ]
)
