"""A reviewer's taps on a review task: ✅ Correct or ❌ Wrong, and after ❌ on a label the right
label. Review tasks come in the same loop as items (``handlers/worker.py`` renders them), and
a verdict is recorded like an answer: idempotent on the lease token, the next task at once."""

from __future__ import annotations

import asyncio
import re

from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import MessageHandler, filters

from handlers import texts
from handlers.callbacks import (
    REVIEW_PATTERN,
    REVIEW_WRONG_PATTERN,
    decode_verdict,
    decode_wrong,
    encode_verdict,
    encode_wrong,
)
from handlers.registry import (
    ButtonRoute,
    RepliesToPrompt,
    Routes,
    answer_query,
    decoded_tap,
    prompt_reply,
    reject_tap,
)
from handlers.services import Context
from handlers.worker import (
    on_cards,
    replace_body,
    reply_was_lost,
    show,
    show_on_card,
    tell_reviewer_change,
)
from storage.results import NoItem, Rejected, Rejection, Reviewed, TaskSetView

EXAMPLE_TOKEN = "tok3n-0123456789"
# After ❌ on a typed or voice answer: a prompt to reply to, so that the correction is never
# taken for an answer (handlers/replies.py takes every other message).
CORRECTION_PROMPT = "Review #{id}: if you like, reply with the right text."
CORRECTION_PROMPT_RE = re.compile(r"^Review #(\d+):")


def right_label_keyboard(token: str, view: TaskSetView, given: int | None) -> InlineKeyboardMarkup:
    """Every label but the one under review; a tap records ❌ with that label as the right one."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label.text, callback_data=encode_verdict(token, False, index))]
            for index, label in enumerate(view.labels)
            if index != given
        ]
    )


async def wrong(update: Update, context: Context) -> None:
    """❌ on a labeled or "Not sure" answer: nothing is stored yet; the buttons become the
    labels to choose the right one from."""
    tap = await decoded_tap(update, decode_wrong)
    if tap is None:
        return
    query, data = tap
    view = await context.bot_data.store.current_taskset(query.from_user.id)
    if view is None or (data.given is not None and not 0 <= data.given < len(view.labels)):
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
        if outcome.correction_wanted is not None:
            await ask_correction(context, chat_id, outcome.correction_wanted)
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
    if outcome.correction_wanted is not None:
        await ask_correction(context, chat_id, outcome.correction_wanted)
    change, view = outcome.status_change, outcome.next.taskset
    if change is not None and change.reversed_minor and isinstance(outcome.next, NoItem) and view:
        await context.bot.send_message(
            chat_id, texts.reversed_on_suspension(change.reversed_minor, view)
        )
    await show(context, chat_id, outcome.next)


async def ask_correction(context: Context, chat_id: int, review_id: int) -> None:
    await context.bot.send_message(
        chat_id,
        CORRECTION_PROMPT.format(id=review_id),
        reply_markup=ForceReply(input_field_placeholder=texts.REVIEW_CORRECTION_PLACEHOLDER),
    )


async def correction(update: Update, context: Context) -> None:
    """A reply to the correction prompt: the right text, found by the review id in it."""
    reply = prompt_reply(update, CORRECTION_PROMPT_RE)
    if reply is None:
        return
    reviews = context.bot_data.store.reviews
    saved = await reviews.set_correction(reply.number, reply.user_id, reply.text)
    await reply.message.reply_text(
        texts.REVIEW_CORRECTION_SAVED if saved else texts.ALERTS[Rejection.FORGED]
    )


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
    others=[
        MessageHandler(
            filters.ChatType.PRIVATE
            & filters.UpdateType.MESSAGE
            & filters.TEXT
            & ~filters.COMMAND
            & RepliesToPrompt(CORRECTION_PROMPT_RE),
            correction,
        ),
    ],
)
