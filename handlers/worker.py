"""What a crowd worker does in a private chat: start, label item after item, dispute gold."""

from __future__ import annotations

import asyncio
import logging
import re

from telegram import (
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from telegram.error import BadRequest
from telegram.ext import (
    MessageHandler,
    filters,
)

from handlers import texts
from handlers.callbacks import (
    ANSWER_PATTERN,
    DISPUTE_PATTERN,
    JOIN_PATTERN,
    NO_REASON_PATTERN,
    UNDO_PATTERN,
    ItemMessage,
    decode_answer,
    decode_dispute,
    decode_join,
    decode_no_reason,
    decode_undo,
    encode_answer,
    encode_dispute,
    encode_join,
    encode_no_reason,
    encode_undo,
    encode_verdict,
    encode_wrong,
)
from handlers.labeling_bot import Button, InlineKeyboard
from handlers.registry import (
    ButtonRoute,
    Command,
    RepliesToPrompt,
    Routes,
    answer_query,
    decoded_tap,
    prompt_reply,
    reject_tap,
)
from handlers.services import Context
from storage.models import AnswerKind, MembershipStatus
from storage.results import (
    NextItem,
    NoItem,
    NoItemReason,
    Recorded,
    Rejected,
    Rejection,
    ServedItem,
    TaskSetView,
    UnderReview,
    Undone,
    UndoRefusal,
    UndoRefused,
)
from tasksets.rendering import fits_caption, fits_text, item_body

log = logging.getLogger(__name__)

LOST_REPLY_SECONDS = 3.0
# Telegram's 400s that blame the chat, not the item being sent.
CHAT_PROBLEMS = ("chat not found", "user not found", "peer_id_invalid", "rights")
MAX_REFUSED_ITEMS_IN_A_ROW = 3
DISPUTE_PROMPT = "Dispute #{id}: if you like, reply with what you think is wrong."
DISPUTE_PROMPT_RE = re.compile(r"^Dispute #(\d+):")
UNSURE_PROMPT_RE = re.compile(r"^Why not sure\?.*\(#(\d+)\)$", re.DOTALL)  # texts.UNSURE_PROMPT
ITEM_NUMBER_RE = re.compile(r"^Item (\d+)$", re.MULTILINE)


def task_body(served: ServedItem) -> str:
    """An item as the worker reads it, or a review task with the answer under review."""
    if served.review is not None:
        return texts.review_body(served.text, served.taskset.question, served.review.given)
    question = texts.item_question(served.taskset, served.taskset.question)
    return item_body(served.number, served.text, question)


def review_keyboard(served: ServedItem, review: UnderReview) -> list[list[Button]]:
    """✅ Correct / ❌ Wrong; ❌ on a label or a "Not sure" asks for the right label before
    anything is stored (on a typed or voice answer it is stored at once)."""
    picks_label = review.kind in (AnswerKind.LABEL, AnswerKind.UNSURE)
    wrong = (
        encode_wrong(served.token, review.label_index)
        if picks_label
        else encode_verdict(served.token, False)
    )
    return [
        [
            Button(
                text=texts.REVIEW_CORRECT_BUTTON, callback_data=encode_verdict(served.token, True)
            ),
            Button(text=texts.REVIEW_WRONG_BUTTON, callback_data=wrong),
        ]
    ]


def item_keyboard(served: ServedItem, after: list[Button] | None = None) -> InlineKeyboard:
    """The labels with Skip and Not sure, or a review's verdict buttons; ``after``: a row of
    the answer before (on a card: its Dispute, Undo or Skip reason buttons)."""
    if served.review is not None:
        rows = review_keyboard(served, served.review)
        if after:
            rows.append(after)
        return InlineKeyboard(inline_keyboard=rows)
    labels = served.taskset.labels
    per_row = 1 if any(len(label.text) > 18 for label in labels) else 2
    buttons = [
        Button(text=label.text, callback_data=encode_answer(served.token, index))
        for index, label in enumerate(labels)
    ]
    rows = [buttons[start : start + per_row] for start in range(0, len(buttons), per_row)]
    rows.append(
        [
            Button(text=texts.SKIP_BUTTON, callback_data=encode_answer(served.token, "skip")),
            Button(text=texts.UNSURE_BUTTON, callback_data=encode_answer(served.token, "unsure")),
        ]
    )
    if after:  # a card: the Dispute, Undo or Skip reason buttons of the answer before
        rows.append(after)
    return InlineKeyboard(inline_keyboard=rows)


def dispute_button(answer_id: int) -> Button:
    return Button(text=texts.DISPUTE_BUTTON, callback_data=encode_dispute(answer_id))


def answer_buttons(
    outcome: Recorded,
    token: str,
    prompt_id: int | None,
    next_message: ItemMessage | None = None,
) -> list[Button]:
    """The buttons an answer leaves for a while: Dispute under gold feedback, Undo (the answer
    and the lease it answered, and in a chat ``next_message``, the item sent after it; too late
    after UNDO_SECONDS, by the server's clock), and Skip reason under a "not sure" prompt. They
    stay until that message is next edited: taking them away on time would cost a second Bot
    API call per answer."""
    buttons = []
    if outcome.gold is not None:
        buttons.append(dispute_button(outcome.gold.answer_id))
    if outcome.undoable:
        undo = encode_undo(outcome.answer_id, token, next_message)
        buttons.append(Button(text=texts.UNDO_BUTTON, callback_data=undo))
    if prompt_id is not None:
        skip = encode_no_reason(prompt_id)
        buttons.append(Button(text=texts.NO_REASON_BUTTON, callback_data=skip))
    return buttons


def ptb_markup(buttons: list[Button] | None) -> InlineKeyboardMarkup | None:
    """One row of buttons as PTB's markup, for the calls PTB makes itself; None for none."""
    if not buttons:
        return None
    row = [InlineKeyboardButton(b["text"], callback_data=b["callback_data"]) for b in buttons]
    return InlineKeyboardMarkup([row])


async def send_item(
    context: Context,
    chat_id: int,
    served: ServedItem,
    head: str | None = None,
    dispute: int | None = None,
) -> ItemMessage:
    """One message per item: text, or the media with the text and question as its caption
    (``head`` on top, and a Dispute button for answer ``dispute``: a new card after a typed
    answer). A review of a voice answer sends the voice note first. Returns the message with
    the buttons."""
    body = task_body(served)
    if head is not None:
        body = texts.card(head, body)
    keyboard = item_keyboard(served, [dispute_button(dispute)] if dispute is not None else None)
    bot = context.bot
    if served.review is not None and served.review.voice_file_id is not None:
        await bot.send_voice(chat_id, served.review.voice_file_id)
    if served.media_kind is None or served.media_ref is None:
        return ItemMessage(await bot.send_text(chat_id, body, keyboard))
    if fits_caption(body):
        kind, ref = served.media_kind, served.media_ref
        return ItemMessage(await bot.send_media(chat_id, kind, ref, body, keyboard), True)
    # too long for a caption: the text and buttons follow the media
    await bot.send_media(chat_id, served.media_kind, served.media_ref)
    return ItemMessage(await bot.send_text(chat_id, body, keyboard))


async def note_item_message(context: Context, served: ServedItem, message_id: int) -> None:
    """An item answered by typing or voice: its answer comes as the worker's own message, so
    the store keeps which message to take the buttons off then. (An answer faster than this
    write leaves them on; a tap there gets "Already recorded".)"""
    if served.taskset.answer != "labels" and served.review is None:  # a review takes taps only
        await context.bot_data.store.note_item_message(served.token, message_id)


async def show(
    context: Context,
    chat_id: int,
    result: NextItem,
    head: str | None = None,
    dispute: int | None = None,
) -> ItemMessage | None:
    """Send the item, or say why there is none (under ``head`` and with a Dispute button, if
    given: see send_item); returns the item's message, if one was sent. An item Telegram
    refuses to show (a text too long with its number and question, a media link it cannot
    fetch) is set aside for the coordinator, a review for its reviewer, and the next task is
    sent, so a worker is never stuck on it."""
    store = context.bot_data.store
    for attempt in range(1, MAX_REFUSED_ITEMS_IN_A_ROW + 1):
        if not isinstance(result, ServedItem):
            reason = texts.no_item(result)
            await context.bot.send_message(
                chat_id,
                texts.card(head, reason) if head is not None else reason,
                reply_markup=dispute_keyboard(dispute) if dispute is not None else None,
            )
            return None
        try:
            sent = await send_item(context, chat_id, result, head, dispute)
            await note_item_message(context, result, sent.message_id)
            return sent
        except BadRequest as error:
            if blames_the_chat(error):
                raise
            await set_aside(context, chat_id, result, error)
            if attempt == MAX_REFUSED_ITEMS_IN_A_ROW:
                raise  # more likely the chat than every item: the error handler tells the worker
            result = await store.next_item_for(chat_id)
    return None  # not reached: the last refusal raises


async def set_aside(context: Context, chat_id: int, served: ServedItem, error: BadRequest) -> None:
    """Telegram refuses to show ``served``: an item is set aside for the coordinator, a review
    for this reviewer only (another may see it: a voice note this one does not accept), so the
    next ``next_item_for`` serves something else."""
    store = context.bot_data.store
    if served.review is None:
        log.warning(
            "Telegram refused an item of task set %s (%s); set aside, the worker gets the next",
            served.taskset.name,
            error.message,
        )
        await store.set_aside(served.token, error.message)
        return
    review_id = await store.reviews.set_aside(served.token)
    log.warning(
        "Telegram refused review %s of task set %s to reviewer %s (%s); set aside for them, "
        "they get the next",
        review_id,
        served.taskset.name,
        chat_id,
        error.message,
    )


def blames_the_chat(error: BadRequest) -> bool:
    """A 400 about the chat or the bot's rights, which setting the item aside would not cure."""
    message = error.message.lower()
    return any(problem in message for problem in CHAT_PROBLEMS)


def taskset_keyboard(tasksets: list[TaskSetView]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(view.title, callback_data=encode_join(view.id))]
            for view in tasksets
        ]
    )


async def start(update: Update, context: Context) -> None:
    """``/start`` or the deep link ``/start <taskset>``: greet, guide, and serve the first item."""
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    store = context.bot_data.store
    taskset_id = None
    if context.args:
        taskset_id = await store.taskset_id(context.args[0])
        if taskset_id is None:
            await offer_tasksets(
                message, texts.UNKNOWN_TASKSET.format(name=context.args[0]), context
            )
            return
    if not await join_and_start(context, user, taskset_id):
        await offer_tasksets(message, texts.CHOOSE_TASKSET, context)


async def join_and_start(context: Context, user: User, taskset_id: int | None) -> bool:
    """Put the worker on a set, greet them with its guidelines and send the first item.

    False when there is no such active set (or, without an id, no single obvious one)."""
    store = context.bot_data.store
    view = await store.join(
        user.id,
        user.full_name,
        username=user.username,
        language=user.language_code,
        taskset_id=taskset_id,
    )
    if view is None:
        return False
    await context.bot.send_message(user.id, texts.greeting(user.first_name, view))
    await show(context, user.id, await store.next_item_for(user.id))
    return True


async def offer_tasksets(message: Message, prompt: str, context: Context) -> None:
    tasksets = await context.bot_data.store.active_tasksets()
    if not tasksets:
        await message.reply_text(texts.NO_TASKSETS)
        return
    await message.reply_text(prompt, reply_markup=taskset_keyboard(tasksets))


async def join_taskset(update: Update, context: Context) -> None:
    tap = await decoded_tap(update, decode_join)
    if tap is None:
        return
    query, taskset_id = tap
    await answer_query(query)
    if not await join_and_start(context, query.from_user, taskset_id):
        await context.bot.send_message(query.from_user.id, texts.NO_TASKSETS)


async def next_item(update: Update, context: Context) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    await show(context, message.chat_id, await context.bot_data.store.next_item_for(user.id))


async def guidelines(update: Update, context: Context) -> None:
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    view = await context.bot_data.store.current_taskset(user.id)
    await message.reply_text(
        texts.guidelines(view) if view else texts.no_item(NoItem(NoItemReason.NO_TASKSET))
    )


async def help_command(update: Update, context: Context) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_text(texts.HELP)


async def answer(update: Update, context: Context) -> None:
    """A tap on a label: record it, show the choice in place, and send the next item (the card
    layout edits the tapped message into the next item instead)."""
    tap = await decoded_tap(update, decode_answer)
    if tap is None:
        return
    query, data = tap
    message = query.message if isinstance(query.message, Message) else None
    store = context.bot_data.store
    outcome = await store.record_answer(
        data.token,
        query.from_user.id,
        data.choice,
        message_id=message.message_id if message else None,
    )
    chat_id = query.from_user.id
    if isinstance(outcome, Rejected):
        await answer_query(query, texts.ALERTS[outcome.reason], show_alert=True)
        if outcome.reason == Rejection.EXPIRED or reply_was_lost(outcome):
            current = await store.next_item_for(chat_id)
            if message is not None and on_cards(current):
                await show_on_card(context, message, texts.stale_card(outcome.chosen), current)
                return
            if message is not None:
                await edit_body(context, message, outcome.chosen)
            await show(context, chat_id, current)
        return
    unsure = data.choice == "unsure"
    if message is not None and on_cards(outcome.next):
        # The confirmation rides on the tap's answer, which no rate limit counts.
        toast = asyncio.ensure_future(answer_query(query, texts.card_answered(outcome.chosen)))
        try:
            prompt_id = await ask_unsure_reason(context, chat_id, outcome) if unsure else None
            after = answer_buttons(outcome, data.token, prompt_id)
            await answer_on_card(context, message, outcome, after)
        finally:
            await toast
        return
    # The spinner on the button and the edit are independent calls: send them together.
    if message is not None:
        spinner = asyncio.ensure_future(answer_query(query))  # one task, where gather makes two
        try:
            prompt_id = await ask_unsure_reason(context, chat_id, outcome) if unsure else None
            if outcome.undoable:
                # The next item goes first, so that Undo can name its message (which an undo
                # puts back); the answered item shows the choice a round trip later.
                await tell_outcome(context, chat_id, outcome)
                sent = await show(context, chat_id, outcome.next)
                after = answer_buttons(outcome, data.token, prompt_id, sent)
                await edit_body(context, message, outcome.chosen, after)
                return
            gold = outcome.gold is not None  # the Dispute button goes under the feedback
            after = [] if gold else answer_buttons(outcome, data.token, prompt_id)
            await edit_body(context, message, outcome.chosen, after)
        finally:
            await spinner
    else:
        await answer_query(query)
    await tell_outcome(context, chat_id, outcome)
    # A suspension or a failed qualification is explained by the "no more items" message.
    await show(context, chat_id, outcome.next)


async def tell_outcome(context: Context, chat_id: int, outcome: Recorded) -> None:
    """The chat layout's messages after an answer: gold feedback (with its Dispute button),
    a passed training, a new or lost reviewer level, money reversed by a suspension."""
    if outcome.gold is not None:
        await context.bot.send_message(
            chat_id,
            texts.gold_feedback(outcome.gold),
            reply_markup=dispute_keyboard(outcome.gold.answer_id),
        )
    change = outcome.status_change
    if change is not None and change.status == MembershipStatus.ACTIVE:
        await context.bot.send_message(chat_id, texts.passed_training(change.reason))
    await tell_reviewer_change(context, chat_id, outcome.reviewer_change, outcome.next)
    if change is not None and change.reversed_minor and isinstance(outcome.next, NoItem):
        view = outcome.next.taskset  # a suspension: its pending money was reversed
        if view is not None:
            reversal = texts.reversed_on_suspension(change.reversed_minor, view)
            await context.bot.send_message(chat_id, reversal)


def outcome_news(outcome: Recorded) -> list[str]:
    """The card layout's lines above the next item: what tell_outcome sends as messages."""
    lines = []
    if outcome.gold is not None:
        lines.append(texts.gold_feedback(outcome.gold))
    change = outcome.status_change
    if change is not None and change.status == MembershipStatus.ACTIVE:
        lines.append(texts.passed_training(change.reason))
    view = outcome.next.taskset
    if outcome.reviewer_change is not None and view is not None:
        lines.append(texts.reviewer_change(outcome.reviewer_change, view))
    if change is not None and change.reversed_minor and isinstance(outcome.next, NoItem) and view:
        lines.append(texts.reversed_on_suspension(change.reversed_minor, view))
    return lines


async def tell_reviewer_change(
    context: Context, chat_id: int, change: bool | None, following: NextItem
) -> None:
    """The worker reached the set's reviewer level (True) or lost it (False)."""
    if change is not None and following.taskset is not None:
        await context.bot.send_message(chat_id, texts.reviewer_change(change, following.taskset))


def on_cards(result: NextItem) -> bool:
    """The worker's set uses the card layout: the tapped message becomes the next item."""
    return result.taskset is not None and result.taskset.layout == "card"


async def ask_unsure_reason(context: Context, chat_id: int, outcome: Recorded) -> int:
    """After "Not sure": ask why, with a ForceReply the worker may answer or ignore (the next
    item comes at once all the same). Returns the prompt's message id."""
    prompt = await context.bot.send_message(
        chat_id,
        texts.UNSURE_PROMPT.format(id=outcome.answer_id),
        reply_markup=ForceReply(input_field_placeholder=texts.UNSURE_PLACEHOLDER),
    )
    return prompt.message_id


async def answer_on_card(
    context: Context, message: Message, outcome: Recorded, after: list[Button]
) -> None:
    """Edit the answered card into the next item (or the reason there is none), with the gold
    feedback, a change of standing and the answer's confirmation on top, and the answer's
    buttons (``after``) under the next item's."""
    lines = outcome_news(outcome)
    number = ITEM_NUMBER_RE.search(message.text or message.caption or "")
    lines.append(texts.card_confirmation(outcome.chosen, int(number[1]) if number else None))
    await show_on_card(context, message, "\n".join(lines), outcome.next, after)


async def show_on_card(
    context: Context,
    message: Message,
    head: str,
    result: NextItem,
    after: list[Button] | None = None,
) -> None:
    """Edit the card into ``result`` under ``head``: one Bot API call. Where Telegram cannot
    (a text message into a media one or back, a caption too long, an item it refuses) the card
    keeps only the head and the item comes as a new message, as in the chat layout."""
    bot, chat_id, message_id = context.bot, message.chat_id, message.message_id
    is_text = message.text is not None
    try:
        if isinstance(result, ServedItem):
            body = texts.card(head, task_body(result))
            keyboard = item_keyboard(result, after)
            if result.media_kind is None or result.media_ref is None:
                if is_text and fits_text(body):
                    await bot.replace_text(chat_id, message_id, body, keyboard)
                    await note_item_message(context, result, message_id)
                    return
            elif not is_text and fits_caption(body):
                kind, ref = result.media_kind, result.media_ref
                await bot.replace_media(chat_id, message_id, kind, ref, body, keyboard)
                await note_item_message(context, result, message_id)
                return
        elif is_text:
            body = texts.card(head, texts.no_item(result))
            markup = InlineKeyboard(inline_keyboard=[after]) if after else None
            await bot.replace_text(chat_id, message_id, body, markup)
            return
    except BadRequest as error:
        # A redelivered update may find the card showing this item already; that is fine.
        if "not modified" in error.message.lower():
            return
        if blames_the_chat(error) or not isinstance(result, ServedItem):
            raise
        await set_aside(context, chat_id, result, error)
        result = await context.bot_data.store.next_item_for(chat_id)
    keyboard_markup = ptb_markup(after)
    try:
        if is_text:
            await message.edit_text(head, reply_markup=keyboard_markup)
        else:
            await message.edit_caption(head, reply_markup=keyboard_markup)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise
    await show(context, chat_id, result)


def reply_was_lost(outcome: Rejected) -> bool:
    """A repeated tap long after the answer: the worker saw no reaction to the first one
    (the process died, a Bot API call failed), so the choice and the current item are shown
    again. A quick double tap only gets the alert."""
    return (
        outcome.reason == Rejection.DUPLICATE
        and (outcome.seconds_since_answer or 0.0) >= LOST_REPLY_SECONDS
    )


def dispute_keyboard(answer_id: int) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(texts.DISPUTE_BUTTON, callback_data=encode_dispute(answer_id))
    return InlineKeyboardMarkup([[button]])


async def edit_body(
    context: Context, message: Message, chosen: str | None, after: list[Button] | None = None
) -> None:
    """Show the choice under the item, in place of its buttons those the answer leaves
    (``after``: Undo, Skip reason), text or media caption alike."""
    body = message.text if message.text is not None else message.caption
    await replace_body(
        context,
        message,
        texts.answered(body or "", chosen) if chosen else texts.expired(body or ""),
        after,
    )


async def replace_body(
    context: Context, message: Message, new_body: str, after: list[Button] | None = None
) -> None:
    """Edit the message's text (or caption); its buttons give way to ``after``, if any."""
    try:
        if message.text is not None:
            keyboard = InlineKeyboard(inline_keyboard=[after]) if after else None
            await context.bot.replace_text(message.chat_id, message.message_id, new_body, keyboard)
        else:
            await message.edit_caption(new_body, reply_markup=ptb_markup(after))
    except BadRequest as error:
        # A redelivered update may find the message already edited; that is fine.
        if "not modified" not in error.message.lower():
            raise


async def dispute(update: Update, context: Context) -> None:
    tap = await decoded_tap(update, decode_dispute)
    if tap is None:
        return
    query, answer_id = tap
    dispute_id = await context.bot_data.store.dispute(answer_id, query.from_user.id)
    if dispute_id is None:  # not the tapper's own gold answer: a forged or forwarded button
        await reject_tap(query)
        return
    await answer_query(query, texts.DISPUTE_RECORDED)
    if isinstance(query.message, Message):  # a card keeps its item's buttons
        await query.message.edit_reply_markup(without(query.message.reply_markup, DISPUTE_PATTERN))
    await context.bot.send_message(
        query.from_user.id,
        DISPUTE_PROMPT.format(id=dispute_id),
        reply_markup=ForceReply(input_field_placeholder="What is wrong with it?"),
    )


def without(
    markup: InlineKeyboardMarkup | None, pattern: re.Pattern[str]
) -> InlineKeyboardMarkup | None:
    """The keyboard less the buttons whose callback data matches ``pattern``."""
    rows = [
        [b for b in row if not pattern.match(str(b.callback_data))]
        for row in (markup.inline_keyboard if markup else ())
    ]
    kept = [row for row in rows if row]
    return InlineKeyboardMarkup(kept) if kept else None


async def drop_buttons(message: Message, pattern: re.Pattern[str]) -> None:
    """Take the tapped kind of button off a message; a redelivered update finds it gone."""
    try:
        await message.edit_reply_markup(without(message.reply_markup, pattern))
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise


async def dispute_reason(update: Update, context: Context) -> None:
    """A reply to the dispute prompt: the optional reason, found by the id in the prompt."""
    reply = prompt_reply(update, DISPUTE_PROMPT_RE)
    if reply is None:
        return
    store = context.bot_data.store
    saved = await store.set_dispute_reason(reply.number, reply.user_id, reply.text)
    await reply.message.reply_text(
        texts.DISPUTE_RECORDED if saved else texts.ALERTS[Rejection.FORGED]
    )


async def undo(update: Update, context: Context) -> None:
    """A tap on Undo: withdraw the answer and show its item again in the tapped message (the
    answered item in a chat, the card that moved on). In a chat, the item sent after the answer
    went back to the pool: its message loses its buttons and says so. Too late, already undone
    or no longer the worker's item: an alert says so."""
    tap = await decoded_tap(update, decode_undo)
    if tap is None:
        return
    query, data = tap
    message = query.message if isinstance(query.message, Message) else None
    outcome = await context.bot_data.store.undo_answer(
        data.answer_id, data.token, query.from_user.id
    )
    if isinstance(outcome, UndoRefused):
        await answer_query(query, texts.UNDO_ALERTS[outcome.reason], show_alert=True)
        if outcome.reopened is None:
            if message is not None and outcome.reason != UndoRefusal.FORGED:
                await drop_buttons(message, UNDO_PATTERN)  # it will never work again
            return
        reopened = outcome.reopened
    else:
        await answer_query(query, texts.UNDONE)
        reopened = outcome.reopened
    # Undone now, or before by a tap whose reply never came: show the reopened item.
    if message is None:
        await show(context, query.from_user.id, reopened)
    else:
        await show_on_card(context, message, texts.UNDONE, reopened)
    if isinstance(outcome, Undone) and outcome.put_back and data.next_message is not None:
        await put_back(context, query.from_user.id, data.next_message)


async def put_back(context: Context, chat_id: int, sent: ItemMessage) -> None:
    """The message of an item an undo put back: its buttons go, and it says why (one call)."""
    try:
        if sent.captioned:
            await context.bot.edit_message_caption(chat_id, sent.message_id, caption=texts.PUT_BACK)
        else:
            await context.bot.replace_text(chat_id, sent.message_id, texts.PUT_BACK, None)
    except BadRequest as error:
        # A redelivered update may find it edited already; that is fine.
        if "not modified" not in error.message.lower():
            raise


async def no_reason(update: Update, context: Context) -> None:
    """ "Skip reason": the "not sure" answer stays without one; the prompt goes away, and with
    it the phone's reply field."""
    tap = await decoded_tap(update, decode_no_reason)
    if tap is None:
        return
    query, prompt_id = tap
    await answer_query(query, texts.NO_REASON)
    try:
        await context.bot.delete_message(query.from_user.id, prompt_id)
    except BadRequest as error:  # a second tap: deleted already
        if "not found" not in error.message.lower():
            raise
    if isinstance(query.message, Message):
        await drop_buttons(query.message, NO_REASON_PATTERN)


async def unsure_reason(update: Update, context: Context) -> None:
    """A reply to the "not sure" prompt: the reason, stored on the worker's own answer."""
    reply = prompt_reply(update, UNSURE_PROMPT_RE)
    if reply is None:
        return
    store = context.bot_data.store
    saved = await store.set_unsure_reason(reply.number, reply.user_id, reply.text)
    await reply.message.reply_text(
        texts.UNSURE_REASON_SAVED if saved else texts.UNSURE_REASON_STALE
    )


def replies_to(prompt: re.Pattern[str]) -> filters.BaseFilter:
    """Only text replies to one prompt: any other message may be a typed answer."""
    return (
        filters.ChatType.PRIVATE
        & filters.UpdateType.MESSAGE
        & filters.TEXT
        & ~filters.COMMAND
        & RepliesToPrompt(prompt)
    )


ROUTES = Routes(
    commands=[
        Command("start", "Start labeling", start),
        Command("next", "Show the current item", next_item),
        Command("guidelines", "How to label this task", guidelines),
        Command("help", "How this bot works", help_command),
    ],
    buttons=[
        ButtonRoute(ANSWER_PATTERN, answer, example=encode_answer("tok3n-0123456789", 0)),
        ButtonRoute(DISPUTE_PATTERN, dispute, example=encode_dispute(42)),
        ButtonRoute(JOIN_PATTERN, join_taskset, example=encode_join(7)),
        ButtonRoute(UNDO_PATTERN, undo, example=encode_undo(42, "tok3n-0123456789")),
        ButtonRoute(NO_REASON_PATTERN, no_reason, example=encode_no_reason(42)),
    ],
    others=[
        MessageHandler(replies_to(DISPUTE_PROMPT_RE), dispute_reason),
        MessageHandler(replies_to(UNSURE_PROMPT_RE), unsure_reason),
    ],
)
