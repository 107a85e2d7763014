"""What a worker sees of their own standing: /me (with a chart), /earnings, /leaderboard.

Every number comes from counters kept in the answer's transaction (``storage/standing.py``) and
from the ledger (``storage/ledger.py``), so these commands cost the same however many answers
the database holds.
"""

from __future__ import annotations

import asyncio

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from handlers import standing_chart, texts
from handlers.callbacks import (
    BOARD_PATTERN,
    CHART_PATTERN,
    decode_board,
    encode_board,
)
from handlers.registry import ButtonRoute, Command, Routes, answer_query, decoded_tap, reject_tap
from handlers.services import Context
from storage.results import NoItem, NoItemReason
from storage.statements.tallies import ALL_SETS
from tasksets.standing import Period

NO_SET = texts.no_item(NoItem(NoItemReason.NO_TASKSET))
CHART_DATA = "mc"


def chart_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(texts.CHART_BUTTON, callback_data=CHART_DATA)]]
    )


def board_keyboard(scope: int, period: Period, own_set: int | None) -> InlineKeyboardMarkup:
    """Today / This week / All time for the board shown (the current one marked), and a switch
    between the worker's set and all sets."""
    periods = [
        InlineKeyboardButton(
            ("• " if shown == period else "") + label, callback_data=encode_board(scope, shown)
        )
        for shown, label in texts.PERIOD_BUTTONS.items()
    ]
    rows = [periods]
    if own_set is not None:
        other, label = (
            (ALL_SETS, texts.ALL_SETS_BUTTON) if scope else (own_set, texts.THIS_SET_BUTTON)
        )
        rows.append([InlineKeyboardButton(label, callback_data=encode_board(other, period))])
    return InlineKeyboardMarkup(rows)


async def me(update: Update, context: Context) -> None:
    """The worker's numbers in their current set: answers today and in all, gold accuracy,
    rank, level, the reviewer level (in a set with reviews), money available and pending; a
    button sends the chart."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    store = context.bot_data.store
    view = await store.current_taskset(user.id)
    numbers = await store.standing.my_numbers(user.id, view.id) if view else None
    if view is None or numbers is None:
        await message.reply_text(NO_SET)
        return
    balances = await store.ledger.balances(user.id)
    reviewer = await store.reviews.path(user.id, view.id)
    await message.reply_text(
        texts.me(view, numbers, balances, reviewer), reply_markup=chart_keyboard()
    )


async def chart(update: Update, context: Context) -> None:
    """The Chart button: a PNG of the last 14 days, drawn off the event loop."""
    tap = await decoded_tap(update, lambda data: data if CHART_PATTERN.match(data) else None)
    if tap is None:
        return
    query, _ = tap
    await answer_query(query)
    worker_id = query.from_user.id
    days = await context.bot_data.store.standing.last_days(worker_id)
    if not any(day.answers for day in days):
        await context.bot.send_message(worker_id, texts.CHART_NOTHING)
        return
    png = await asyncio.to_thread(standing_chart.render, days)
    await context.bot.send_photo(worker_id, photo=png, caption=texts.CHART_ME_CAPTION)


async def board_text(
    context: Context, worker_id: int, scope: int, period: Period
) -> tuple[str, InlineKeyboardMarkup]:
    store = context.bot_data.store
    board = await store.standing.board(scope, period, worker_id)
    title = (await store.view(scope)).title if scope else None
    own = await store.current_taskset(worker_id)
    return (
        texts.leaderboard(board, title, worker_id),
        board_keyboard(scope, period, own.id if own else None),
    )


async def leaderboard(update: Update, context: Context) -> None:
    """The top ten of the worker's set (all sets when they are on none) of all time, with
    buttons for today and this week and for the board of all sets."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    view = await context.bot_data.store.current_taskset(user.id)
    text, keyboard = await board_text(context, user.id, view.id if view else ALL_SETS, Period.ALL)
    await message.reply_text(text, reply_markup=keyboard)


async def switch_board(update: Update, context: Context) -> None:
    """A period or scope button: the same message, edited in place."""
    tap = await decoded_tap(update, decode_board)
    if tap is None:
        return
    query, data = tap
    try:
        text, keyboard = await board_text(context, query.from_user.id, data.scope, data.period)
    except LookupError:  # no such task set: forged data
        await reject_tap(query)
        return
    await answer_query(query)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text, reply_markup=keyboard)
        except BadRequest as error:  # the same board tapped again: nothing changed
            if "not modified" not in error.message.lower():
                raise


async def earnings(update: Update, context: Context) -> None:
    """Available, pending and paid per currency, and the latest ledger lines in words."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    await message.reply_text(texts.earnings(await context.bot_data.store.ledger.statement(user.id)))


ROUTES = Routes(
    commands=[
        Command("me", "My answers, accuracy, rank and earnings", me),
        Command("earnings", "My balance: available, pending and paid", earnings),
        Command("leaderboard", "Top workers and my rank", leaderboard),
    ],
    buttons=[
        ButtonRoute(CHART_PATTERN, chart, example=CHART_DATA),
        ButtonRoute(BOARD_PATTERN, switch_board, example=encode_board(ALL_SETS, Period.WEEK)),
    ],
)
