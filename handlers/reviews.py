"""A reviewer's taps on a review task: ✅ Correct or ❌ Wrong, and after ❌ on a label the right
label. Review tasks come in the same loop as items (``handlers/worker.py`` renders them), and
a verdict is recorded like an answer: idempotent on the lease token, the next task at once."""

from __future__ import annotations

import asyncio

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from handlers import texts
from handlers.callbacks import (
    REVIEW_PATTERN,
    REVIEW_WRONG_PATTERN,
    decode_verdict,
    decode_wrong,
    encode_verdict,
    encode_wrong,
)
from handlers.registry import ButtonRoute, Routes, answer_query, decoded_tap, reject_tap
from handlers.services import Context
from handlers.worker import (
    on_cards,
    replace_body,
    reply_was_lost,
    show,
    show_on_card,
    tell_reviewer_change,
)
from storage.results import NoItem, Rejected, Reviewed, TaskSetView

EXAMPLE_TOKEN = "tok3n-0123456789"


def right_label_keyboard(token: str, view: TaskSetView, given: int) -> InlineKeyboardMarkup:
    """Every label but the one under review; a tap records ❌ with that label as the right one."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label.text, callback_data=encode_verdict(token, False, index))]
            for index, label in enumerate(view.labels)
            if index != given
        ]
    )


async def wrong(update: Update, context: Context) -> None:
    """❌ on a labeled answer: nothing is stored yet; the buttons become the other labels."""
    tap = await decoded_tap(update, decode_wrong)
    if tap is None:
        return
    query, data = tap
    view = await context.bot_data.store.current_taskset(query.from_user.id)
    if view is None or not 0 <= data.given < len(view.labels):
        await reject_tap(query)
        return
    await answer_query(query, texts.PICK_RIGHT_LABEL)
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(
                right_label_keyboard(data.token, view, data.given)
            )
        except BadRequest as error:  # a second ❌ on the same review: already showing them
            if "not modified" not in error.message.lower():
                raise


async def verdict(update: Update, context: Context) -> None:
    """✅, ❌ on a typed or voice answer, or the right label after ❌: record the verdict, show
    it in place and send the next task (the card layout edits the review into it)."""
    tap = await decoded_tap(update, decode_verdict)
    if tap is None:
        return
    query, data = tap
    message = query.message if isinstance(query.message, Message) else None
    store = context.bot_data.store
    chat_id = query.from_user.id
    outcome = await store.reviews.record_review(data.token, chat_id, data.correct, data.corrected)
    if isinstance(outcome, Rejected):
        await answer_query(query, texts.ALERTS[outcome.reason], show_alert=True)
        if reply_was_lost(outcome):
            await show(context, chat_id, await store.next_item_for(chat_id))
        return
    if message is not None and on_cards(outcome.next):
        toast = asyncio.ensure_future(answer_query(query, texts.card_answered(outcome.verdict)))
        try:
            await show_on_card(context, message, card_head(outcome), outcome.next)
        finally:
            await toast
        return
    if message is not None:
        body = message.text if message.text is not None else message.caption
        spinner = asyncio.ensure_future(answer_query(query))
        try:
            await replace_body(context, message, texts.reviewed(body or "", outcome.verdict))
        finally:
            await spinner
    else:
        await answer_query(query)
    if outcome.gold is not None:
        await context.bot.send_message(chat_id, texts.gold_review_feedback(outcome.gold))
    await tell_reviewer_change(context, chat_id, outcome.reviewer_change, outcome.next)
    change, view = outcome.status_change, outcome.next.taskset
    if change is not None and change.reversed_minor and isinstance(outcome.next, NoItem) and view:
        await context.bot.send_message(
            chat_id, texts.reversed_on_suspension(change.reversed_minor, view)
        )
    await show(context, chat_id, outcome.next)


def card_head(outcome: Reviewed) -> str:
    """What the card says above the next task: the feedback and the verdict recorded."""
    lines = []
    if outcome.gold is not None:
        lines.append(texts.gold_review_feedback(outcome.gold))
    view = outcome.next.taskset
    if outcome.reviewer_change is not None and view is not None:
        lines.append(texts.reviewer_change(outcome.reviewer_change, view))
    change = outcome.status_change
    if change is not None and change.reversed_minor and isinstance(outcome.next, NoItem) and view:
        lines.append(texts.reversed_on_suspension(change.reversed_minor, view))
    lines.append(texts.card_answered(outcome.verdict))
    return "\n".join(lines)


ROUTES = Routes(
    buttons=[
        ButtonRoute(REVIEW_PATTERN, verdict, example=encode_verdict(EXAMPLE_TOKEN, True)),
        ButtonRoute(REVIEW_WRONG_PATTERN, wrong, example=encode_wrong(EXAMPLE_TOKEN, 1)),
    ],
)
