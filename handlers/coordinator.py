"""What a coordinator does in a private chat: upload a task-set file, preview it, publish or
cancel it; /tasksets with every set's progress and its buttons (pause, resume, close, export,
stats with a chart, workers, disputes, "Not sure" items); /suspend with a reason of one's own.
(Workers turn the messages about new sets off in /settings: handlers/settings.py.)

Every coordinator command, button and upload checks the sender's numeric id against
``LABELBOT_COORDINATORS`` (``Services.coordinators``) first: anyone else, a forged or
forwarded button included, gets "not allowed" and nothing changes. The same parser, storage
calls and rules as ``labelbot load``, ``labelbot export`` and ``labelbot workers`` do the work.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Sequence
from functools import partial
from pathlib import PurePath
from typing import Literal, cast

from telegram import (
    CallbackQuery,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import CommandHandler, MessageHandler, filters

from handlers import charts, texts
from handlers.callbacks import (
    DECIDE_PATTERN,
    DISPUTES_PATTERN,
    DRAFT_PATTERN,
    EXPORT_PATTERN,
    PREVIEW_PATTERN,
    REINSTATE_PATTERN,
    STATS_PATTERN,
    STATUS_PATTERN,
    SUSPEND_PATTERN,
    UNSURE_PATTERN,
    WORKERS_PATTERN,
    decode_parts,
    encode_join,
    encode_parts,
)
from handlers.labeling_bot import Button, InlineKeyboard
from handlers.registry import (
    ButtonRoute,
    Routes,
    answer_query,
    decoded_tap,
    reject_tap,
)
from handlers.services import Context
from storage.coordination import TaskSetOverview
from storage.exports import UnknownTaskSet, export_taskset
from storage.loading import TaskSetExists
from storage.models import TaskSetStatus
from storage.results import NoItem, NoItemReason
from tasksets.aggregation import Method
from tasksets.parsing import Format, TaskSetError, parse_caption, parse_taskset_bytes
from tasksets.rendering import fits_caption, item_body
from tasksets.spec import TaskSetSpec

log = logging.getLogger(__name__)

# Bots may download files up to 20 MB (getFile); a bigger document is refused before.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
FORMATS: dict[str, Format] = {".json": "json", ".jsonl": "jsonl", ".csv": "csv"}
DOWNLOAD_SECONDS = 120.0  # 20 MB on a slow link
MAX_CARDS = 20
STATUS_ACTIONS = {"p": "pause", "r": "resume", "c": "close"}
METHODS: dict[str, Method] = {"m": "mv", "w": "wawa", "d": "ds"}


# ------------------------------------------------------------------------- access


def is_coordinator(context: Context, user_id: int) -> bool:
    return user_id in context.bot_data.coordinators


async def coordinator_message(update: Update, context: Context) -> Message | None:
    """The coordinator's message, or None after telling anyone else "not allowed"."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return None
    if not is_coordinator(context, user.id):
        log.info("user %s tried a coordinator command; refused", user.id)
        await message.reply_text(texts.NOT_ALLOWED)
        return None
    return message


async def coordinator_tap(
    update: Update, context: Context, pattern: re.Pattern[str]
) -> tuple[CallbackQuery, tuple[str, ...]] | None:
    """A coordinator's tap and its decoded data; anyone else's tap (a forwarded or forged
    coordinator button) gets the "not allowed" alert and changes nothing."""
    query = update.callback_query
    if query is None:
        return None
    if not is_coordinator(context, query.from_user.id):
        log.info("user %s tapped a coordinator button; refused", query.from_user.id)
        await answer_query(query, texts.NOT_ALLOWED, show_alert=True)
        return None
    return await decoded_tap(update, partial(decode_parts, pattern))


def keyboard(rows: Sequence[Sequence[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


async def edit(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Replace the tapped message's text (and buttons); an unchanged message is fine."""
    if not isinstance(query.message, Message):
        return
    try:
        await query.message.edit_text(text, reply_markup=markup)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise


async def tell(
    context: Context, worker_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> bool:
    """Best effort message to a worker; a worker who blocked the bot is marked inactive."""
    try:
        await context.bot.send_message(worker_id, text, reply_markup=markup)
        return True
    except Forbidden:
        await context.bot_data.store.mark_inactive(worker_id)
    except TelegramError as error:
        log.warning("could not tell worker %s: %s", worker_id, error)
    return False


def start_keyboard(taskset_id: int) -> InlineKeyboardMarkup:
    return keyboard([[(texts.START_BUTTON, encode_join(taskset_id))]])


# ------------------------------------------------------------------------- upload


async def upload(update: Update, context: Context) -> None:
    """A task-set file sent as a document: validate it with the CLI's parser, store it as a
    draft, and show a preview with Publish / Cancel."""
    message = await coordinator_message(update, context)
    if message is None or message.document is None:
        return
    document = message.document
    name = document.file_name or "file"
    fmt = FORMATS.get(PurePath(name).suffix.lower())
    if fmt is None:
        await message.reply_text(texts.upload_wrong_type(name))
        return
    if (document.file_size or 0) > MAX_UPLOAD_BYTES:  # refused before any download
        await message.reply_text(texts.upload_too_big(name, document.file_size or 0))
        return
    try:
        overrides = parse_caption(message.caption or "")
        data = await download(context, document)
        if data is None:
            await message.reply_text(texts.upload_too_big(name, MAX_UPLOAD_BYTES + 1))
            return
        spec = await asyncio.to_thread(
            parse_taskset_bytes, data, fmt, overrides, default_name=PurePath(name).stem
        )
    except TaskSetError as error:
        await message.reply_text(texts.upload_invalid(name, [str(p) for p in error.problems]))
        return
    except TelegramError as error:
        log.warning("could not download %s: %s", name, error)
        await message.reply_text(texts.upload_unreadable(name))
        return
    try:
        taskset_id = await context.bot_data.store.load_taskset(spec, status=TaskSetStatus.DRAFT)
    except TaskSetExists:
        await message.reply_text(texts.upload_name_taken(spec.name))
        return
    await preview(context, message.chat_id, taskset_id, spec)


async def download(context: Context, document: Document) -> bytes | None:
    """The document's bytes through the Bot API file endpoint; None when over the limit."""
    file = await context.bot.get_file(document.file_id)
    if (file.file_size or 0) > MAX_UPLOAD_BYTES:
        return None
    data = bytes(await file.download_as_bytearray(read_timeout=DOWNLOAD_SECONDS))
    return data if len(data) <= MAX_UPLOAD_BYTES else None


def preview_keyboard(spec: TaskSetSpec) -> InlineKeyboard:
    """The item's buttons laid out as a worker gets them (handlers/worker.py item_keyboard),
    each answering "preview only"."""
    per_row = 1 if any(len(label.text) > 18 for label in spec.labels) else 2
    data = encode_parts("cv")
    buttons = [Button(text=label.text, callback_data=data) for label in spec.labels]
    rows = [buttons[start : start + per_row] for start in range(0, len(buttons), per_row)]
    rows.append(
        [
            Button(text=texts.SKIP_BUTTON, callback_data=data),
            Button(text=texts.UNSURE_BUTTON, callback_data=data),
        ]
    )
    return InlineKeyboard(inline_keyboard=rows)


async def preview(context: Context, chat_id: int, taskset_id: int, spec: TaskSetSpec) -> None:
    """The first item exactly as a worker will see it, then the summary with Publish/Cancel."""
    first = spec.items[0]
    body = item_body(1, first.text, texts.item_question(spec, spec.question))
    buttons = preview_keyboard(spec)
    bot = context.bot
    problem = None
    try:
        if first.media is None:
            await bot.send_text(chat_id, body, buttons)
        elif fits_caption(body):
            await bot.send_media(chat_id, first.media[0], first.media[1], body, buttons)
        else:
            await bot.send_media(chat_id, first.media[0], first.media[1])
            await bot.send_text(chat_id, body, buttons)
    except BadRequest as error:  # a media link Telegram cannot fetch: say so, keep the draft
        problem = error.message
    await bot.send_message(
        chat_id,
        texts.draft_summary(spec, problem),
        reply_markup=draft_keyboard(taskset_id),
    )


def draft_keyboard(taskset_id: int) -> InlineKeyboardMarkup:
    return keyboard(
        [
            [
                (texts.PUBLISH_BUTTON, encode_parts("cp", taskset_id)),
                (texts.CANCEL_BUTTON, encode_parts("cx", taskset_id)),
            ]
        ]
    )


async def preview_tap(update: Update, context: Context) -> None:
    """A label button of an upload's item preview: it only says so."""
    tap = await coordinator_tap(update, context, PREVIEW_PATTERN)
    if tap is not None:
        await answer_query(tap[0], texts.PREVIEW_TAP)


async def draft_decision(update: Update, context: Context) -> None:
    """Publish (open the set, tell the workers) or Cancel (delete the draft) an upload."""
    tap = await coordinator_tap(update, context, DRAFT_PATTERN)
    if tap is None:
        return
    query, (action, taskset_id) = tap
    coordination = context.bot_data.store.coordination
    if action == "p":
        published = await coordination.publish(int(taskset_id), chat_id=query.from_user.id)
        if published is None:
            await answer_query(query, texts.DRAFT_GONE, show_alert=True)
            return
        await answer_query(query)
        await edit(query, texts.published(published.view.title, published.recipients))
        broadcaster = context.bot_data.broadcaster
        if broadcaster is not None:
            broadcaster.wake()
        return
    if await coordination.discard_draft(int(taskset_id)) is None:
        await answer_query(query, texts.DRAFT_GONE, show_alert=True)
        return
    await answer_query(query)
    await edit(query, texts.CANCELLED)


# ---------------------------------------------------------------------- /tasksets


def card_keyboard(overview: TaskSetOverview) -> InlineKeyboardMarkup:
    taskset_id = overview.taskset_id
    if overview.status == TaskSetStatus.DRAFT:
        return draft_keyboard(taskset_id)
    control = {
        TaskSetStatus.ACTIVE: [("p", texts.PAUSE_BUTTON), ("c", texts.CLOSE_BUTTON)],
        TaskSetStatus.PAUSED: [("r", texts.RESUME_BUTTON), ("c", texts.CLOSE_BUTTON)],
        TaskSetStatus.CLOSED: [("r", texts.RESUME_BUTTON)],
    }[overview.status]
    return keyboard(
        [
            [(text, encode_parts("ct", code, taskset_id)) for code, text in control],
            [
                (texts.EXPORT_BUTTON, encode_parts("ce", taskset_id)),
                (texts.STATS_BUTTON, encode_parts("cs", taskset_id)),
            ],
            [
                (texts.WORKERS_BUTTON, encode_parts("cw", taskset_id)),
                (texts.DISPUTES_BUTTON, encode_parts("cd", taskset_id)),
                (texts.UNSURE_LIST_BUTTON, encode_parts("cq", taskset_id)),
            ],
        ]
    )


async def tasksets(update: Update, context: Context) -> None:
    """/tasksets: one card per set with its progress and buttons (the newest sets)."""
    message = await coordinator_message(update, context)
    if message is None:
        return
    overviews = await context.bot_data.store.coordination.overview()
    if not overviews:
        await message.reply_text(texts.NO_TASKSETS_YET)
        return
    for overview in overviews[-MAX_CARDS:]:
        await message.reply_text(texts.taskset_card(overview), reply_markup=card_keyboard(overview))


async def change_status(update: Update, context: Context) -> None:
    """Pause, resume or close a set, and show its card as it is now."""
    tap = await coordinator_tap(update, context, STATUS_PATTERN)
    if tap is None:
        return
    query, (code, ident) = tap
    coordination = context.bot_data.store.coordination
    taskset_id = int(ident)
    changed = await coordination.change_status(taskset_id, STATUS_ACTIONS[code])
    found = await coordination.overview(taskset_id)
    if not found:
        await answer_query(query, texts.UNKNOWN_SET, show_alert=True)
        return
    overview = found[0]
    if changed is None:
        await answer_query(query, texts.cannot_change(overview.title, overview.status), True)
        return
    await answer_query(query, texts.status_changed(overview.title, changed))
    await edit(query, texts.taskset_card(overview), card_keyboard(overview))


# ------------------------------------------------------------------------- export


def export_keyboard(taskset_id: int) -> InlineKeyboardMarkup:
    return keyboard(
        [
            [
                (f"{method_text} · {fmt_text}", encode_parts("ce", taskset_id, fmt, method))
                for fmt, fmt_text in texts.EXPORT_FORMATS.items()
            ]
            for method, method_text in texts.EXPORT_METHODS.items()
        ]
    )


async def export(update: Update, context: Context) -> None:
    """The export menu, or the export itself as a document: the content `labelbot export`
    writes, from the same function (CSV formula-safe, with BOM)."""
    tap = await coordinator_tap(update, context, EXPORT_PATTERN)
    if tap is None:
        return
    query, (ident, fmt, method) = tap
    store = context.bot_data.store
    taskset_id = int(ident)
    found = await store.coordination.overview(taskset_id)
    if not found:
        await answer_query(query, texts.UNKNOWN_SET, show_alert=True)
        return
    overview = found[0]
    await answer_query(query)
    if not fmt:
        await context.bot.send_message(
            query.from_user.id,
            texts.export_menu(overview.title),
            reply_markup=export_keyboard(taskset_id),
        )
        return
    extension = cast(Literal["csv", "jsonl"], {"c": "csv", "j": "jsonl"}[fmt])
    out = io.StringIO(newline="")
    try:
        rows = await export_taskset(
            store,
            overview.name,
            out,
            fmt=extension,
            method=METHODS.get(method, "mv"),
            raw=method == "r",
        )
    except UnknownTaskSet:
        await context.bot.send_message(query.from_user.id, texts.UNKNOWN_SET)
        return
    suffix = "raw" if method == "r" else METHODS[method]
    await context.bot.send_document(
        query.from_user.id,
        InputFile(
            io.BytesIO(out.getvalue().encode("utf-8")),
            filename=f"{overview.name}-{suffix}.{extension}",
        ),
        caption=texts.export_caption(overview.title, rows, method, fmt),
    )


# -------------------------------------------------------------------------- stats


async def stats(update: Update, context: Context) -> None:
    """Agreement, gold accuracy across workers, labels, what is open, and a chart."""
    tap = await coordinator_tap(update, context, STATS_PATTERN)
    if tap is None:
        return
    query, (ident,) = tap
    report = await context.bot_data.store.coordination.stats(int(ident))
    if report is None:
        await answer_query(query, texts.UNKNOWN_SET, show_alert=True)
        return
    await answer_query(query)
    chat_id = query.from_user.id
    title = report.overview.title
    await context.bot.send_message(chat_id, texts.stats(report, title))
    png = await asyncio.to_thread(
        charts.progress_chart, report.hourly, report.needed_answers, title
    )
    await context.bot.send_photo(
        chat_id, InputFile(io.BytesIO(png), filename=f"{report.overview.name}.png")
    )


async def unsure(update: Update, context: Context) -> None:
    """The items workers most often answered "Not sure": where the guidelines need work."""
    tap = await coordinator_tap(update, context, UNSURE_PATTERN)
    if tap is None:
        return
    query, (ident,) = tap
    store = context.bot_data.store
    items = await store.coordination.unsure_items(int(ident))
    view = await store.view(int(ident))
    await answer_query(query)
    await context.bot.send_message(query.from_user.id, texts.unsure_items(view.title, items))


# ------------------------------------------------------------------------ workers


async def workers(update: Update, context: Context) -> None:
    """Best and worst workers with their numbers, who is suspended and why; buttons to
    suspend and reinstate (what `labelbot workers list` shows)."""
    tap = await coordinator_tap(update, context, WORKERS_PATTERN)
    if tap is None:
        return
    query, (ident,) = tap
    taskset_id = int(ident)
    report = await context.bot_data.store.coordination.workers(taskset_id)
    await answer_query(query)
    rows = [
        [(f"⛔ {s.worker_id} {s.name[:16]}", encode_parts("cu", taskset_id, s.worker_id))]
        for s in [*report.best, *report.worst]
    ]
    rows += [
        [(f"✅ {s.worker_id} {s.name[:16]}", encode_parts("ci", taskset_id, s.worker_id))]
        for s in report.suspended
    ]
    await context.bot.send_message(
        query.from_user.id,
        texts.workers_report(report),
        reply_markup=keyboard(rows) if rows else None,
    )


async def suspend_tap(update: Update, context: Context) -> None:
    """The reasons to pick from, or, with a reason picked, the suspension."""
    tap = await coordinator_tap(update, context, SUSPEND_PATTERN)
    if tap is None:
        return
    query, (ident, worker, code) = tap
    taskset_id, worker_id = int(ident), int(worker)
    store = context.bot_data.store
    if not code:
        view = await store.view(taskset_id)
        await answer_query(query)
        await context.bot.send_message(
            query.from_user.id,
            texts.suspend_menu(worker_id, view.title, view.name),
            reply_markup=keyboard(
                [
                    [(reason, encode_parts("cu", taskset_id, worker_id, reason_code))]
                    for reason_code, reason in texts.SUSPEND_REASONS.items()
                ]
            ),
        )
        return
    reason = texts.SUSPEND_REASONS.get(code)
    if reason is None:
        await reject_tap(query)
        return
    await answer_query(query)
    reply = await suspend_worker(context, taskset_id, worker_id, reason)
    await edit(query, reply)


async def suspend_command(update: Update, context: Context) -> None:
    """/suspend WORKER_ID TASKSET_NAME REASON: a suspension with a reason of one's own."""
    message = await coordinator_message(update, context)
    if message is None:
        return
    args = context.args or []
    if len(args) < 3 or not args[0].isdigit():
        await message.reply_text(texts.SUSPEND_USAGE)
        return
    taskset_id = await context.bot_data.store.taskset_id(args[1])
    if taskset_id is None:
        await message.reply_text(texts.UNKNOWN_SET)
        return
    reason = " ".join(args[2:])[:300]
    await message.reply_text(await suspend_worker(context, taskset_id, int(args[0]), reason))


async def suspend_worker(context: Context, taskset_id: int, worker_id: int, reason: str) -> str:
    """Suspend and tell the worker why; the coordinator's confirmation."""
    store = context.bot_data.store
    done = await store.coordination.suspend(taskset_id, worker_id, reason)
    if done is None:
        view = await store.view(taskset_id)
        return texts.NOT_ACTIVE_WORKER.format(worker=worker_id, title=view.title)
    await tell(context, worker_id, texts.no_item(NoItem(NoItemReason.SUSPENDED, done.view, reason)))
    return texts.suspended(worker_id, done.view.title, reason)


async def reinstate(update: Update, context: Context) -> None:
    tap = await coordinator_tap(update, context, REINSTATE_PATTERN)
    if tap is None:
        return
    query, (ident, worker) = tap
    taskset_id, worker_id = int(ident), int(worker)
    store = context.bot_data.store
    view = await store.coordination.reinstate(taskset_id, worker_id)
    if view is None:
        title = (await store.view(taskset_id)).title
        await answer_query(
            query, texts.NOT_SUSPENDED.format(worker=worker_id, title=title), show_alert=True
        )
        return
    await answer_query(query)
    await tell(context, worker_id, texts.welcome_back(view.title), start_keyboard(taskset_id))
    await context.bot.send_message(query.from_user.id, texts.reinstated(worker_id, view.title))


# ----------------------------------------------------------------------- disputes


async def disputes(update: Update, context: Context) -> None:
    """The oldest open gold dispute of a set, with Accept and Reject."""
    tap = await coordinator_tap(update, context, DISPUTES_PATTERN)
    if tap is None:
        return
    query, (ident,) = tap
    await answer_query(query)
    await show_dispute(context, query.from_user.id, int(ident))


async def show_dispute(context: Context, chat_id: int, taskset_id: int) -> None:
    store = context.bot_data.store
    case = await store.coordination.next_dispute(taskset_id)
    view = await store.view(taskset_id)
    if case is None:
        await context.bot.send_message(chat_id, texts.NO_DISPUTES.format(title=view.title))
        return
    await context.bot.send_message(
        chat_id,
        texts.dispute_case(case, view.title),
        reply_markup=keyboard(
            [
                [(texts.ACCEPT_BUTTON, encode_parts("cy", case.dispute_id))],
                [(texts.REJECT_BUTTON, encode_parts("cn", case.dispute_id))],
            ]
        ),
    )


async def decide(update: Update, context: Context) -> None:
    """Accept (correct the gold label, recount scores, re-judge standings) or reject a
    dispute; the workers concerned are told, and the next dispute follows."""
    tap = await coordinator_tap(update, context, DECIDE_PATTERN)
    if tap is None:
        return
    query, (code, ident) = tap
    decision = await context.bot_data.store.coordination.decide_dispute(
        int(ident), accept=code == "y", coordinator_id=query.from_user.id
    )
    if decision is None:
        await answer_query(query, texts.DECIDED_ALREADY, show_alert=True)
        return
    await answer_query(query)
    await edit(query, texts.dispute_decided(decision))
    outcome = texts.dispute_outcome(decision)
    for worker_id in dict.fromkeys([decision.worker_id, *decision.also_accepted]):
        await tell(context, worker_id, outcome)
    view = decision.view
    for worker_id in decision.reinstated:
        await tell(context, worker_id, texts.welcome_back(view.title), start_keyboard(view.id))
    for worker_id, reason in decision.suspended:
        await tell(context, worker_id, texts.no_item(NoItem(NoItemReason.SUSPENDED, view, reason)))
    await show_dispute(context, query.from_user.id, view.id)


# ------------------------------------------------------------- completion (a job)


async def report_completed(context: Context) -> None:
    """Tell the coordinators about every set that got all its answers (once per set, whichever
    process notices first). Run by the job queue."""
    for completed in await context.bot_data.store.coordination.newly_completed():
        for coordinator in sorted(context.bot_data.coordinators):
            try:
                await context.bot.send_message(coordinator, texts.taskset_complete(completed))
            except TelegramError as error:
                log.warning("could not tell coordinator %s: %s", coordinator, error)


ROUTES = Routes(
    buttons=[
        ButtonRoute(PREVIEW_PATTERN, preview_tap, example="cv"),
        ButtonRoute(DRAFT_PATTERN, draft_decision, example=encode_parts("cp", 7)),
        ButtonRoute(STATUS_PATTERN, change_status, example=encode_parts("ct", "p", 7)),
        ButtonRoute(EXPORT_PATTERN, export, example=encode_parts("ce", 7, "c", "d")),
        ButtonRoute(STATS_PATTERN, stats, example=encode_parts("cs", 7)),
        ButtonRoute(WORKERS_PATTERN, workers, example=encode_parts("cw", 7)),
        ButtonRoute(SUSPEND_PATTERN, suspend_tap, example=encode_parts("cu", 7, 42, "s")),
        ButtonRoute(REINSTATE_PATTERN, reinstate, example=encode_parts("ci", 7, 42)),
        ButtonRoute(DISPUTES_PATTERN, disputes, example=encode_parts("cd", 7)),
        ButtonRoute(DECIDE_PATTERN, decide, example=encode_parts("cy", 9)),
        ButtonRoute(UNSURE_PATTERN, unsure, example=encode_parts("cq", 7)),
    ],
    # Coordinator commands stay out of the command menu, which every worker sees.
    others=[
        CommandHandler("tasksets", tasksets, filters=filters.ChatType.PRIVATE),
        CommandHandler("suspend", suspend_command, filters=filters.ChatType.PRIVATE),
        MessageHandler(filters.ChatType.PRIVATE & filters.Document.ALL, upload),
    ],
)
