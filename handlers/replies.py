"""Typed and voice answers: a worker's message answers their leased item, and an edit of it
within the edit window corrects the answer.

The answer is stored (or refused) by one storage call, as a tap is; this module turns the
message into a ``Reply`` and the outcome into messages. Registered after every other module:
a reply to one of the bot's prompts (a dispute's reason) or a coordinator's upload is handled
there first.
"""

from __future__ import annotations

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import MessageHandler, filters

from handlers import texts
from handlers.registry import RepliesToPrompt, Routes
from handlers.reviews import CORRECTION_PROMPT_RE
from handlers.services import Context
from handlers.worker import (
    DISPUTE_PROMPT_RE,
    LOST_REPLY_SECONDS,
    on_cards,
    outcome_news,
    show,
    tell_outcome,
)
from storage.results import (
    Edited,
    EditRefusal,
    NoReplyWanted,
    Recorded,
    Rejected,
    Rejection,
    ReplyUnfit,
)
from tasksets.replies import Reply, Voice


def reply_of(message: Message) -> Reply:
    """What the message offers as an answer: its text, its voice note, or nothing usable."""
    if message.voice is not None:
        voice = message.voice
        # An int, or a timedelta where PTB is asked for those (PTB_TIMEDELTA).
        length = voice.duration
        seconds = length if isinstance(length, int) else int(length.total_seconds())
        return Reply(voice=Voice(voice.file_id, seconds, voice.file_size))
    return Reply(text=message.text)


async def answer_by_message(update: Update, context: Context) -> None:
    """A worker's message: the answer to their leased item, if it fits the set."""
    message, user = update.message, update.effective_user
    if message is None or user is None:
        return
    store = context.bot_data.store
    outcome = await store.record_reply(user.id, message.message_id, reply_of(message))
    chat_id = message.chat_id
    match outcome:
        case Recorded():
            await take_buttons_off(context, chat_id, outcome.item_message_id)
            if on_cards(outcome.next):
                # The answer sits below the answered card, so the next card comes below it.
                head = outcome_news(outcome)
                head.append(texts.card_confirmation(texts.short(outcome.chosen), None))
                dispute = outcome.gold.answer_id if outcome.gold is not None else None
                await show(context, chat_id, outcome.next, "\n".join(head), dispute)
                return
            await tell_outcome(context, chat_id, outcome)
            await show(context, chat_id, outcome.next)
        case Rejected(reason=Rejection.DUPLICATE):
            # A redelivered update. Long after the answer, the reply to it may have been lost
            # (the process died): the worker is shown where they are.
            if (outcome.seconds_since_answer or 0.0) >= LOST_REPLY_SECONDS:
                saved = texts.REPLY_SAVED_ALREADY.format(answer=texts.short(outcome.chosen or ""))
                await message.reply_text(saved)
                await show(context, chat_id, await store.next_item_for(user.id))
        case Rejected(reason=Rejection.EXPIRED):
            await message.reply_text(texts.REPLY_TIMED_OUT)
            await show(context, chat_id, await store.next_item_for(user.id))
        case Rejected():
            await message.reply_text(texts.ALERTS[outcome.reason])
        case ReplyUnfit():
            await message.reply_text(texts.reply_unfit(outcome.problem, outcome.taskset))
        case NoReplyWanted(taskset=view) if view is not None and view.answer == "labels":
            await message.reply_text(texts.NOT_A_REPLY_TASK)
        case NoReplyWanted():
            await message.reply_text(texts.NO_ITEM_WAITING)
            await show(context, chat_id, await store.next_item_for(user.id))


async def take_buttons_off(context: Context, chat_id: int, message_id: int | None) -> None:
    """The answered item's Skip and Not sure go; a message already without them is fine."""
    if message_id is None:
        return
    try:
        await context.bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise


async def edit_answer(update: Update, context: Context) -> None:
    """The worker edited a message: if it carried their typed answer, the edit replaces it."""
    message, user = update.edited_message, update.effective_user
    if message is None or user is None or message.text is None:
        return
    outcome = await context.bot_data.store.edit_reply(user.id, message.message_id, message.text)
    match outcome:
        case Edited():
            await message.reply_text(texts.edited(outcome.text))
        case ReplyUnfit():
            await message.reply_text(texts.edit_unfit(outcome.problem, outcome.taskset))
        case EditRefusal():
            await message.reply_text(texts.EDIT_REFUSED[outcome])


ROUTES = Routes(
    others=[
        MessageHandler(
            filters.ChatType.PRIVATE
            & filters.UpdateType.MESSAGE
            & ~filters.COMMAND
            & ~filters.Document.ALL
            # A reply to a prompt (a voice note there, say) is no answer either.
            & ~RepliesToPrompt(DISPUTE_PROMPT_RE, CORRECTION_PROMPT_RE),
            answer_by_message,
        ),
        MessageHandler(
            filters.ChatType.PRIVATE
            & filters.UpdateType.EDITED_MESSAGE
            & filters.TEXT
            & ~filters.COMMAND,
            edit_answer,
        ),
    ],
)
