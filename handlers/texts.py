"""Every user-facing text in one place, so wording and a later translation live together."""

from __future__ import annotations

import math
from datetime import timedelta

from storage.broadcasts import BroadcastProgress
from storage.coordination import (
    Completed,
    DisputeCase,
    DisputeDecision,
    TaskSetOverview,
    TaskSetStats,
    UnsureItem,
    WorkersReport,
)
from storage.ledger import Balance, LedgerLine, Statement
from storage.models import LedgerKind
from storage.results import (
    EditRefusal,
    GoldFeedback,
    NoItem,
    NoItemReason,
    Rejection,
    TaskSetView,
    UndoRefusal,
    WorkerScore,
)
from storage.standing import Board, MyNumbers, Place, Unranked
from tasksets.money import format_money
from tasksets.replies import ReplyProblem, ReplyRules, takes_text, takes_voice
from tasksets.review import ReviewerPath
from tasksets.spec import TaskSetSpec
from tasksets.standing import Period

SKIP_BUTTON = "Skip"
UNSURE_BUTTON = "Not sure"
DISPUTE_BUTTON = "Dispute"
UNDO_BUTTON = "↩ Undo"
NO_REASON_BUTTON = "Skip reason"
# The "not sure" prompt (a ForceReply); it ends with the answer's id, so a reply finds it
# (handlers/worker.py: UNSURE_PROMPT_RE).
UNSURE_PROMPT = "Why not sure? (optional)\nReply to this message, or tap “Skip reason”. (#{id})"
UNSURE_PLACEHOLDER = "Why not sure? (optional)"
UNSURE_REASON_SAVED = "Thanks – noted for the coordinators."
UNSURE_REASON_STALE = "That “Not sure” answer was undone or changed, so the reason was not kept."
NO_REASON = "Fine – kept without a reason."

HELP = (
    "I send you items to label, one at a time. Tap the button that fits best; "
    "the next item comes at once.\n\n"
    "“Skip” passes an item you cannot judge; “Not sure” tells us it is ambiguous (reply to "
    "the question that follows to say why, if you like). Tapped the wrong button? "
    "“↩ Undo” brings the item back for 30 seconds.\n"
    "Some tasks ask you to type an answer or to send a voice note instead: send it as your next "
    "message. A typed answer can be corrected by editing that message within 10 minutes.\n"
    "Some items are control questions with a known answer: they look like any other item, "
    "and your accuracy on them is how we know your labels are good.\n\n"
    "/next – the current item again\n"
    "/me – your answers, accuracy and earnings\n"
    "/earnings – your balance, pending and paid\n"
    "/leaderboard – the top workers and your rank\n"
    "/settings – your name on leaderboards, messages about new tasks\n"
    "/mydata – everything stored about you\n"
    "/delete – erase your personal data\n"
    "/guidelines – how to label this task\n"
    "/help – this message\n\n"
    "Reviewers: in a task with reviews, a worker with enough answers and a high accuracy on "
    "control questions becomes a reviewer (/me shows how far you are). Reviewers also get "
    "other workers' answers to check: ✅ Correct or ❌ Wrong (then the right label), each "
    "paid. Some reviews are control questions too, and a reviewer whose accuracy falls stops "
    "reviewing."
)

NO_TASKSETS = "There is nothing to label right now. Please come back later."
CHOOSE_TASKSET = "Which task would you like to work on?"
UNKNOWN_TASKSET = "I don't know a task called “{name}”. Here is what is open:"
ERROR = "Sorry, something went wrong on our side. Please try /next in a moment."

ALERTS = {
    Rejection.DUPLICATE: "Already recorded – thanks!",
    Rejection.FORGED: "This button is not valid any more.",
    Rejection.FOREIGN: "This button belongs to someone else's item.",
    Rejection.EXPIRED: "This item timed out and went to someone else. Here is a fresh one.",
}
UNDO_ALERTS = {
    UndoRefusal.FORGED: ALERTS[Rejection.FORGED],
    UndoRefusal.ALREADY: "Already undone.",
    UndoRefusal.TOO_LATE: "Too late to undo: an answer can be undone for 30 seconds.",
    UndoRefusal.TAKEN: "Can't undo: that item went to someone else meanwhile.",
    UndoRefusal.NOT_ACTIVE: "Can't undo: the task is paused or closed.",
    UndoRefusal.SUSPENDED: "Can't undo: your work on this task is paused.",
    UndoRefusal.ELSEWHERE: "Can't undo: you moved to another task.",
    UndoRefusal.REVIEWED: "Can't undo: a reviewer has judged this answer already.",
}
UNDONE = "↩ Undone – answer it again."
# The item sent after an undone answer, which went back to the pool.
PUT_BACK = "↩ Put back for now: you are answering the item you undid."
DISPUTE_RECORDED = "Thanks – a coordinator will review this control question."
SLOW_DOWN = (
    "Slow down a little, please: I skipped your last few messages, and nothing in them was "
    "saved. Send your answer again in a moment."
)
SLOW_DOWN_ALERT = "Slow down a little, please – tap again in a moment."


def greeting(first_name: str, taskset: TaskSetView) -> str:
    return f"Hi {first_name}! You are labeling “{taskset.title}”.\n\n" + guidelines(taskset)


def guidelines(taskset: TaskSetView) -> str:
    body = taskset.instructions.strip() or taskset.question
    if taskset.answer != "labels":
        return f"Guidelines: {body}\n\nHow to answer: {reply_prompt(taskset)}"
    labels = ", ".join(label.text for label in taskset.labels)
    return f"Guidelines: {body}\n\nLabels: {labels}."


# Typed and voice answers (handlers/replies.py): what to send, and why a message is no answer.
def seconds_range(rules: ReplyRules) -> str:
    low, high = rules.min_seconds, rules.max_seconds
    if low is not None and high is not None:
        return f" of {low:g}–{high:g} s"
    if low is not None:
        return f" of at least {low:g} s"
    return f" of up to {high:g} s" if high is not None else ""


def reply_prompt(rules: ReplyRules) -> str:
    """What to send, under each item of a set answered by typing or voice."""
    typed = f"up to {rules.max_length:,} characters"
    voice = f"a voice note{seconds_range(rules)}"
    if takes_text(rules) and takes_voice(rules):
        return f"✍ Reply with text ({typed}) or 🎙 send {voice}."
    if takes_text(rules):
        return f"✍ Reply with text, {typed}."
    return f"🎙 Send {voice}."


def item_question(rules: ReplyRules, question: str) -> str:
    """The question under an item; a set answered by typing or voice says what to send."""
    if rules.answer == "labels":
        return question
    return f"{question}\n{reply_prompt(rules)}"


def unfit_reason(problem: ReplyProblem, rules: ReplyRules) -> str:
    match problem:
        case ReplyProblem.EMPTY:
            why = "That message is empty."
        case ReplyProblem.TOO_LONG:
            why = f"That is longer than {rules.max_length:,} characters. Please shorten it."
        case ReplyProblem.TOO_SHORT_VOICE:
            why = f"That voice note is too short: {rules.min_seconds:g} s at least, please."
        case ReplyProblem.TOO_LONG_VOICE:
            why = f"That voice note is too long: {rules.max_seconds:g} s at most, please."
        case _:  # a sticker, a photo, or the other kind of answer
            why = "This task takes another kind of answer."
    return why


def reply_unfit(problem: ReplyProblem, rules: ReplyRules) -> str:
    """Why a message is not taken as the answer; the item keeps waiting for one."""
    reason = unfit_reason(problem, rules)
    return f"{reason} Nothing was saved; the item is still waiting.\n{reply_prompt(rules)}"


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


NOT_A_REPLY_TASK = "In this task you answer with the buttons under the item (/next shows it)."
NO_ITEM_WAITING = "No item is waiting for an answer right now."
REPLY_SAVED_ALREADY = "Your answer “{answer}” was saved already. Here is your current item."
REPLY_TIMED_OUT = "⌛ That item timed out and went to someone else, so your answer was not saved."
EDIT_REFUSED = {
    EditRefusal.NOT_AN_ANSWER: (
        "That message was not an answer, so editing it changes nothing. "
        "Send your answer as a new message."
    ),
    EditRefusal.UNCHANGED: "Already recorded – thanks!",
    EditRefusal.TOO_LATE: (
        "Too late to change: an answer can be edited for 10 minutes. Your first answer stays."
    ),
    EditRefusal.CHECKED: (
        "That was a control question and you have seen the expected answer, "
        "so your first answer stays."
    ),
    EditRefusal.REVIEWED: "A reviewer has checked that answer already, so it stays as it was.",
}


def edited(text: str) -> str:
    return f"✏ Your answer is now “{short(text, 200)}”."


def edit_unfit(problem: ReplyProblem, rules: ReplyRules) -> str:
    return f"{unfit_reason(problem, rules)} Your answer stays as it was."


def answered(body: str, chosen: str) -> str:
    return f"{body}\n\n✓ Your answer: {chosen}"


def expired(body: str) -> str:
    return f"{body}\n\n⌛ Timed out – this item went to someone else."


# The card layout: one message edited from item to item, the last answer confirmed on top.
def card_answered(chosen: str) -> str:
    """The toast of the tap (answerCallbackQuery), which no rate limit counts."""
    return f"✓ {chosen}"


def card_confirmation(chosen: str, number: int | None) -> str:
    return f"✓ {chosen} · Item {number}" if number is not None else f"✓ {chosen}"


def stale_card(chosen: str | None) -> str:
    """The head of a card tapped again after its answer, or after its item timed out."""
    if chosen is None:
        return "⌛ That item timed out and went to someone else. Here is your current one."
    return f"This card was answered already ({chosen}). Here is your current item."


def card(head: str, body: str) -> str:
    return f"{head}\n\n{body}"


def gold_feedback(feedback: GoldFeedback) -> str:
    head = (
        f"✅ Right: “{feedback.gold_label}”."
        if feedback.correct
        else f"❌ The expected answer was “{feedback.gold_label}”."
    )
    if feedback.training:
        head = f"Training question. {head}"
    if feedback.explanation:
        head += f"\n{feedback.explanation}"
    return head


def no_item(result: NoItem) -> str:
    title = f"“{result.taskset.title}”" if result.taskset else "this task"
    match result.reason:
        case NoItemReason.ALL_DONE:
            return f"🎉 All done! There is nothing left for you in {title}. Thank you!"
        case NoItemReason.NO_TASKSET:
            return "Send /start to pick a task."
        case NoItemReason.NOT_ACTIVE:
            return f"{title} is paused right now. Please come back later."
        case NoItemReason.SUSPENDED:
            return (
                f"Your work on {title} is paused: {result.detail}. "
                "A coordinator will look at it; thank you for your understanding."
            )
        case NoItemReason.FAILED_QUALIFICATION:
            return (
                f"Thank you for trying {title}. This time the training questions did not go well "
                f"enough ({result.detail}), so we can't offer you this task. "
                "Other tasks may suit you better."
            )
        case NoItemReason.BLOCKED:
            return "Your account can't take tasks at the moment."


# The review stream: review tasks in the loop, the reviewer level (handlers/reviews.py).
REVIEW_CORRECT_BUTTON = "✅ Correct"
REVIEW_WRONG_BUTTON = "❌ Wrong"
PICK_RIGHT_LABEL = "❌ Wrong. Which label is right?"


REVIEW_CORRECTION_SAVED = "Thanks – your correction is saved with the review."
REVIEW_CORRECTION_PLACEHOLDER = "The right text"


def review_body(text: str | None, question: str, given: str) -> str:
    """A review task: the item, and the answer under review."""
    parts = ["Review"]
    if text:
        parts.append(text)
    parts += [question, f"Answer given: {given}", "Is this answer right?"]
    return "\n\n".join(parts)


def reviewed(body: str, verdict: str) -> str:
    return f"{body}\n\n✓ Your review: {verdict}"


def gold_review_feedback(right: bool) -> str:
    if right:
        return "✅ Right: that was a control review, and you judged it correctly."
    return "❌ That was a control review, and the answer was judged the other way."


def reviewer_change(promoted: bool, view: TaskSetView) -> str:
    if promoted:
        return (
            f"🎖 You are now a reviewer for “{view.title}”: besides items, you will get other "
            "workers' answers to check. Thank you for your careful work!"
        )
    return (
        f"You are no longer a reviewer for “{view.title}”: your accuracy on control "
        "questions fell below the reviewer level. Keep labeling carefully to get it back."
    )


def reviewer_line(path: ReviewerPath) -> str:
    """/me: the reviewer level, or the way to it."""
    if path.reviewer:
        return "Reviewer: yes, you review other workers' answers in this task"
    steps = []
    if path.answers_missing:
        steps.append(f"{path.answers_missing:,} more answers")
    if path.accuracy < path.min_accuracy:
        steps.append(f"accuracy {path.min_accuracy:.0%} (now {path.accuracy:.0%})")
    if not steps:
        return "Reviewer: you qualify; it starts with your next answer"
    return "Reviewer: after " + " and ".join(steps)


def passed_training(reason: str | None) -> str:
    return f"🎓 You passed the training ({reason}). Now the real items begin."


# --------------------------------------------------------------------------------------------
# Money and standing: /me (and its chart), /earnings, /leaderboard, the name on the boards in
# /settings, /mydata and /delete. handlers/stats.py, handlers/settings.py, handlers/privacy.py.
# --------------------------------------------------------------------------------------------

CHART_BUTTON = "📈 Last 14 days"
PERIOD_BUTTONS = {Period.DAY: "Today", Period.WEEK: "This week", Period.ALL: "All time"}
PERIOD_NAMES = {Period.DAY: "today", Period.WEEK: "this week", Period.ALL: "all time"}
THIS_SET_BUTTON = "This task"
ALL_SETS_BUTTON = "All tasks"
ALL_SETS_TITLE = "All tasks"
CHART_ME_TITLE = "Your last {days} days (UTC)"
CHART_ME_ANSWERS = "Answers"
CHART_ME_ACCURACY = "Control questions right (%)"
CHART_ME_CAPTION = "📈 Your answers per day and your accuracy on control questions."
CHART_NOTHING = "No answers in the last 14 days yet: the chart starts with your first answer."
MYDATA_CAPTION = (
    "🗂 Everything labelbot stores about you: profile, task sets, answers, earnings ledger, "
    "disputes, reviews and daily counts."
)
MYDATA_FILE = "my-labelbot-data.json"
UNKNOWN_PERSON = "I have no data about you: you never sent /start (or erased your data)."
DELETE_BUTTON = "🗑 Delete my data"
KEEP_BUTTON = "Keep it"
DELETE_KEPT = "Nothing was erased."
DELETE_STALE = "This button is more than 10 minutes old: send /delete again to erase your data."
SHOW_NAME_BUTTON = "🙋 Show my first name"
HIDE_NAME_BUTTON = "🕶 Use my pseudonym"


def signed_money(minor: int, currency: str) -> str:
    """A signed amount: "+0.07 USD" or "−0.35 USD" (a real minus sign)."""
    return ("−" if minor < 0 else "+") + format_money(abs(minor), currency)


def balance_line(balance: Balance) -> str:
    currency = balance.currency
    return (
        f"{format_money(balance.available_minor, currency)} available, "
        f"{format_money(balance.pending_minor, currency)} pending, "
        f"{format_money(balance.paid_minor, currency)} paid"
    )


def place_line(place: Place | Unranked | None, ranked: int) -> str:
    if place is None:
        return "not ranked yet: label a few items first"
    if isinstance(place, Unranked):
        missing = place.control_needed - place.control_answers
        return f"not ranked yet: {missing} more control question{'s' if missing != 1 else ''}"
    text = f"#{place.rank:,} of {ranked:,}"
    if place.next_rank is not None and place.gap is not None:
        text += f" ({gap_text(place.gap, place.next_rank)})"
    return text


def gap_text(gap: int, next_rank: int) -> str:
    if gap == 0:
        return f"as many answers as #{next_rank:,}, who is ahead on accuracy"
    return f"{gap:,} answer{'s' if gap != 1 else ''} behind #{next_rank:,}"


def me(
    view: TaskSetView,
    numbers: MyNumbers,
    balances: list[Balance],
    reviewer: ReviewerPath | None = None,
) -> str:
    if numbers.gold_answers:
        accuracy = (
            f"{numbers.gold_correct} of {numbers.gold_answers} control questions right "
            f"(accuracy estimate {numbers.accuracy:.0%})"
        )
    else:
        accuracy = "no control questions answered yet"
    level = numbers.level.name
    if numbers.level.next_step:
        level += f" (next: {numbers.level.next_step})"
    lines = [
        f"📊 “{view.title}”",
        f"Answers: {numbers.answers_today:,} today, {numbers.answers_total:,} in total",
        f"Accuracy: {accuracy}",
        f"Rank: {place_line(numbers.place, numbers.ranked)}",
        f"Level: {level}",
    ]
    if reviewer is not None:
        lines.append(reviewer_line(reviewer))
    if balances:
        lines += [f"Earnings: {balance_line(b)}" for b in balances]
    else:
        lines.append("Earnings: none yet")
    if numbers.status != "active":
        lines.append(f"Status: {numbers.status} ({numbers.status_reason})")
    return "\n".join(lines)


def board_title(title: str | None, period: Period) -> str:
    where = f"“{title}”" if title else ALL_SETS_TITLE
    return f"🏆 {where} · {PERIOD_BUTTONS[period]}"


def leaderboard(board: Board, title: str | None, caller: int) -> str:
    """The top ten and the caller's own place; ``title`` is None for the board of all sets."""
    lines = [board_title(title, board.period)]
    for row in board.rows:
        name = "you" if row.worker_id == caller else row.name
        lines.append(f"{row.rank}. {name} – {row.answers:,} answers, {row.accuracy:.0%} accuracy")
    if not board.rows:
        lines.append(f"Nobody is ranked {PERIOD_NAMES[board.period]} yet.")
    place = board.caller
    if isinstance(place, Place):
        if place.rank > len(board.rows):
            lines.append(
                f"…\n{place.rank:,}. you – {place.answers:,} answers, {place.accuracy:.0%} accuracy"
            )
        summary = f"You: #{place.rank:,} of {board.ranked:,}"
        if place.next_rank is not None and place.gap is not None:
            summary += f", {gap_text(place.gap, place.next_rank)}"
        lines.append(summary + ".")
    else:
        lines.append(f"You: {place_line(place, board.ranked)}.")
    return "\n".join(lines)


def ledger_line(line: LedgerLine) -> str:
    amount = signed_money(line.amount_minor, line.currency)
    where = f" in “{line.taskset_title}”" if line.taskset_title else ""
    match line.kind:
        case LedgerKind.REWARD:
            return f"{amount} answer{where}"
        case LedgerKind.REVIEW:
            return f"{amount} review{where}"
        case LedgerKind.REJECTED:
            return f"{amount} reversed{where}: an answer {line.reason}"
        case LedgerKind.BONUS:
            return f"{amount} bonus{where}: {line.reason}"
        case LedgerKind.REVERSAL:
            return f"{amount} reversed{where}: suspended ({line.reason})"
        case LedgerKind.RESTORE:
            return f"{amount} restored{where}: reinstated"
        case LedgerKind.UNDONE:
            return f"{amount} reversed{where}: answer undone"
        case LedgerKind.ANSWERED_AGAIN:
            return f"{amount} answer{where}: answered again"
        case LedgerKind.PAYOUT:
            return f"{amount} paid out"


def earnings(statement: Statement) -> str:
    if not statement.balances:
        return "No earnings yet: every answer you give adds to your balance."
    lines = ["💰 Your earnings"]
    for balance in statement.balances:
        currency = balance.currency
        lines += [
            f"Available: {format_money(balance.available_minor, currency)}",
            f"Pending: {format_money(balance.pending_minor, currency)}",
            f"Paid out: {format_money(balance.paid_minor, currency)}",
        ]
    lines.append(
        "Pending money becomes available after the task's hold period; "
        "only available money is paid out."
    )
    if statement.lines:
        lines.append("\nLatest:")
        lines += [ledger_line(line) for line in statement.lines]
    return "\n".join(lines)


def reversed_on_suspension(amount_minor: int, view: TaskSetView) -> str:
    return (
        f"{signed_money(-amount_minor, view.currency)} of your pending earnings in “{view.title}” "
        "was reversed, because your work there is suspended (the reason is below). "
        "Money already available stays yours. If a coordinator reinstates you, it comes back."
    )


def name_settings(first_name: str | None, pseudonym: str) -> str:
    shown = f"your first name, {first_name}" if first_name else f"a pseudonym, {pseudonym}"
    return f"Your name on leaderboards: {shown}."


def settings_text(name_line: str, notify: bool) -> str:
    state = "on" if notify else "off"
    return f"⚙ Settings\n{name_line}\nMessages about new tasks: {state}."


def delete_confirm(erased_unpaid: str | None) -> str:
    lines = [
        "🗑 Delete your data?",
        "Erased: your name, username and language, and the name you show on leaderboards. "
        "You leave every leaderboard, and your dispute and “not sure” reasons are blanked.",
        "Kept, under an anonymous id that no longer leads to you: your answers (they are part "
        "of the labeled datasets) and your earnings ledger (so the accounts still add up).",
    ]
    if erased_unpaid:
        lines.append(f"⚠ Your unpaid earnings ({erased_unpaid}) can no longer be paid to you.")
    lines.append("If you come back later, you start afresh.")
    return "\n\n".join(lines)


def deleted(answers: int, entries: int) -> str:
    return (
        "✅ Your personal data is erased. Kept anonymously: "
        f"{answers:,} answer{'s' if answers != 1 else ''} (part of the labeled datasets) and "
        f"{entries:,} ledger entr{'ies' if entries != 1 else 'y'} (so the accounts add up). "
        "Nothing links them to you any more. Send /start to begin afresh."
    )


def unpaid_text(balances: list[Balance]) -> str | None:
    owed = [b for b in balances if b.available_minor + b.pending_minor]
    if not owed:
        return None
    return ", ".join(format_money(b.available_minor + b.pending_minor, b.currency) for b in owed)


# --------------------------------------------------------------------------------------------
# Coordinators: upload, preview, /tasksets, export, stats, workers, disputes, broadcasts, and
# the workers' /settings (notifications). handlers/coordinator.py and handlers/broadcasts.py.
# --------------------------------------------------------------------------------------------

NOT_ALLOWED = "Sorry, only coordinators can do that."
MAX_PROBLEMS_SHOWN = 15
PUBLISH_BUTTON = "✅ Publish"
CANCEL_BUTTON = "✖ Cancel"
PAUSE_BUTTON = "⏸ Pause"
RESUME_BUTTON = "▶ Resume"
CLOSE_BUTTON = "⏹ Close"
EXPORT_BUTTON = "📄 Export"
STATS_BUTTON = "📊 Stats"
WORKERS_BUTTON = "👥 Workers"
DISPUTES_BUTTON = "⚖ Disputes"
UNSURE_LIST_BUTTON = "❓ Not sure"
ACCEPT_BUTTON = "Accept: correct the gold"
REJECT_BUTTON = "Reject"
START_BUTTON = "▶ Start"
EXPORT_METHODS = {
    "m": "majority vote",
    "w": "Wawa",
    "d": "Dawid-Skene",
    "r": "raw answers",
}
EXPORT_FORMATS = {"c": "CSV", "j": "JSONL"}
# Reasons a coordinator picks with a button when suspending a worker; the worker reads them.
SUSPEND_REASONS = {
    "s": "random or spam answers",
    "c": "copied or automated answers",
    "g": "the guidelines were not followed",
    "q": "too many wrong labels",
}
SUSPEND_USAGE = "Usage: /suspend WORKER_ID TASKSET_NAME REASON (the worker reads the reason)."
NO_TASKSETS_YET = (
    "No task sets yet. Send me a task-set file (.json, .jsonl, or .csv with "
    "name=... labels=a|b overlap=3 reward=0.02 in the caption) to upload one."
)
DRAFT_GONE = "This draft was published or cancelled already."
CANCELLED = "✖ Cancelled: nothing was stored."
PREVIEW_TAP = "Preview only: a worker's tap here records their label."
UNKNOWN_SET = "That task set is gone."
NO_DISPUTES = "No gold disputes are waiting in “{title}”."
DECIDED_ALREADY = "This dispute was decided already."
NOT_SUSPENDED = "Worker {worker} is not suspended in “{title}”."
NOT_ACTIVE_WORKER = "Worker {worker} is not active in “{title}”: nothing changed."
NOT_A_WORKER = "Send /start first: then you can choose your settings here."
CHART_TITLE = "“{title}”"
CHART_ANSWERS = "Answers per hour"
CHART_COMPLETION = "Completion (%)"
CHART_TIME = "Hour (UTC)"


def upload_wrong_type(name: str) -> str:
    return (
        f"“{name}” is not a task-set file, so nothing was stored. Send a .json, .jsonl or .csv "
        "file (for CSV, the spec goes in the caption: name=photos labels=cat|dog overlap=3 "
        "reward=0.02)."
    )


def upload_too_big(name: str, size: int) -> str:
    return (
        f"“{name}” is {size / 1024 / 1024:.1f} MB; bots can download files up to 20 MB. "
        "Split it into smaller sets, or load it on the server with `labelbot load`."
    )


def upload_unreadable(name: str) -> str:
    return f"I could not download “{name}” from Telegram. Please send it again."


def upload_invalid(name: str, problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    lines = [f"“{name}” is not a valid task set, so nothing was stored:"]
    lines += [f"• {problem[:300]}" for problem in shown]
    if len(problems) > len(shown):
        lines.append(f"…and {len(problems) - len(shown)} more.")
    return "\n".join(lines)


def upload_name_taken(name: str) -> str:
    return (
        f"A task set named “{name}” exists already, so nothing was stored. Give the new one "
        "another name: in the file, or name=... in the caption."
    )


def draft_summary(spec: TaskSetSpec, problem: str | None) -> str:
    """The preview of an uploaded set: what it holds and what it will cost."""
    gold = sum(item.gold is not None for item in spec.items)
    regular = len(spec.items) - gold
    overlap = spec.overlap
    answers = f"{overlap.min}" if overlap.min == overlap.max else f"{overlap.min}–{overlap.max}"
    reward = format_money(spec.reward_minor, spec.currency)
    low = format_money(regular * overlap.min * spec.reward_minor, spec.currency)
    cost = low
    if overlap.max != overlap.min:
        cost += " to " + format_money(regular * overlap.max * spec.reward_minor, spec.currency)
    lines = [
        f"Draft “{spec.title}” ({spec.name})",
        f"Items: {regular} to label, {gold} gold",
        (
            f"Labels: {', '.join(label.text for label in spec.labels)}"
            if spec.answer == "labels"
            else f"Answers: {reply_prompt(spec)}"
        ),
        f"Overlap: {answers} answers per item",
        f"Reward: {reward} per answer",
        f"Estimated cost: {regular} × {answers} × {reward} = {cost} (gold answers on top)",
        "",
        "Above: the first item as a worker will see it. Workers see nothing until you publish.",
    ]
    if problem:
        lines.append(f"⚠ Telegram could not show that item: {problem}")
    return "\n".join(lines)


def published(title: str, recipients: int) -> str:
    return f"✅ Published “{title}”: workers can start now. Telling {recipients} workers."


def progress_bar(done: int, total: int, width: int = 10) -> str:
    share = done / total if total else 0.0
    filled = round(share * width)
    return "▓" * filled + "░" * (width - filled) + f" {share:.0%}"


def duration(span: timedelta | None) -> str:
    if span is None:
        return "–"
    minutes = round(span.total_seconds() / 60)
    if minutes < 1:
        return "done" if span.total_seconds() <= 0 else "< 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def taskset_card(overview: TaskSetOverview) -> str:
    head = f"“{overview.title}” ({overview.name}) – {overview.status}"
    if overview.status == "draft":
        return (
            f"{head}\n{overview.items} items, {overview.gold_items} gold. "
            "Not published: workers cannot see it."
        )
    accuracy = f"{overview.gold_accuracy:.0%}" if overview.gold_accuracy is not None else "–"
    lines = [
        head,
        f"{progress_bar(overview.items_done, overview.items)}  "
        f"{overview.items_done}/{overview.items} items",
        f"Answers: {overview.answers} · workers: {overview.workers} "
        f"({overview.workers_last_hour} active in the last hour)",
        f"Gold accuracy: {accuracy} · {overview.answers_last_hour} answers/hour · "
        f"ETA: {duration(overview.eta)}",
    ]
    if overview.set_aside:
        lines.append(f"{overview.set_aside} items set aside (Telegram refused to show them)")
    return "\n".join(lines)


def status_changed(title: str, status: str) -> str:
    return {
        "paused": f"⏸ “{title}” is paused: workers get no new items until you resume it.",
        "active": f"▶ “{title}” is open again.",
        "closed": f"⏹ “{title}” is closed: workers get no new items.",
    }.get(status, f"“{title}” is {status}.")


def cannot_change(title: str, status: str | None) -> str:
    return f"“{title}” is {status or 'gone'}: that does not apply."


def export_menu(title: str) -> str:
    return f"Export “{title}”: pick a format and how each item's label is decided."


def export_caption(title: str, rows: int, method: str, fmt: str) -> str:
    return f"“{title}”: {rows} rows, {EXPORT_METHODS[method]}, {EXPORT_FORMATS[fmt]}."


def stats(report: TaskSetStats, title: str) -> str:
    overview = report.overview
    alpha = "–" if math.isnan(report.alpha) else f"{report.alpha:.2f}"
    workers = sum(count for _, count in report.accuracy_buckets)
    buckets = ", ".join(
        f"{'<60' if bound == 0 else f'≥{bound:.0%}'.rstrip('%')}%: {count}"
        for bound, count in report.accuracy_buckets
    )
    total = sum(count for _, count in report.labels) or 1
    labels = ", ".join(f"{text} {count} ({count / total:.0%})" for text, count in report.labels)
    return "\n".join(
        [
            f"📊 “{title}”",
            f"Items: {overview.items_done}/{overview.items} done, {report.open_items} still open",
            f"Answers: {overview.answers} (+{report.unsure} not sure, {report.skipped} skipped)",
            f"Agreement (Krippendorff's alpha): {alpha}",
            f"Gold accuracy of {workers} workers: {buckets}" if workers else "No gold answers yet",
            f"Labels: {labels}",
            f"Disputes waiting: {report.disputes_waiting}",
        ]
    )


def worker_line(score: WorkerScore) -> str:
    median = f"{score.median_seconds:.1f} s" if score.median_seconds is not None else "–"
    return (
        f"{score.worker_id} {score.name[:24]}: {score.gold_accuracy:.0%} "
        f"({score.gold_correct}/{score.gold_answers} gold), {score.answers} answers, "
        f"median {median}"
    )


def workers_report(report: WorkersReport) -> str:
    lines = [f"👥 “{report.view.title}”: {report.total} workers"]
    if report.best:
        lines += ["", "Best (smoothed gold accuracy):"] + [worker_line(s) for s in report.best]
    if report.worst:
        lines += ["", "Worst:"] + [worker_line(s) for s in report.worst]
    if report.suspended:
        lines += ["", "Suspended:"] + [
            f"{s.worker_id} {s.name[:24]}: {s.reason or s.status}" for s in report.suspended
        ]
    if report.total == 0:
        lines.append("Nobody has joined yet.")
    return "\n".join(lines)


def suspend_menu(worker_id: int, title: str, name: str) -> str:
    return (
        f"Suspend worker {worker_id} in “{title}”? Pick the reason they will read, or send\n"
        f"/suspend {worker_id} {name} your own reason"
    )


def suspended(worker_id: int, title: str, reason: str) -> str:
    return f"⛔ Worker {worker_id} is suspended in “{title}” ({reason}). They were told."


def reinstated(worker_id: int, title: str) -> str:
    return f"✅ Worker {worker_id} is reinstated in “{title}”. They were told."


def welcome_back(title: str) -> str:
    return f"✅ Good news: you can label “{title}” again. Tap Start to go on."


def dispute_case(case: DisputeCase, title: str) -> str:
    item = case.text or f"({case.media_kind} item)"
    return "\n".join(
        [
            f"⚖ Dispute in “{title}” ({case.waiting} waiting)",
            f"Item {case.item_id}: {item[:1500]}",
            f"Gold label: {case.gold}",
            f"Worker {case.worker_id} ({case.worker_name[:24]}) answered: {case.answer}",
            f"Their reason: {case.reason or '(none given)'}",
        ]
    )


def dispute_decided(decision: DisputeDecision) -> str:
    if not decision.accepted:
        return f"Rejected: the gold label stays “{decision.gold}”. The worker was told."
    lines = [
        f"Accepted: the gold label is now “{decision.gold}”.",
        f"Gold scores recounted for {decision.rescored} workers.",
    ]
    if decision.reinstated:
        lines.append("Reinstated: " + ", ".join(map(str, decision.reinstated)))
    if decision.suspended:
        lines.append(
            "Now below the accuracy threshold, suspended: "
            + ", ".join(str(worker) for worker, _ in decision.suspended)
        )
    return "\n".join(lines)


def dispute_outcome(decision: DisputeDecision) -> str:
    """What the worker who disputed a control question reads about the decision."""
    item = (decision.item_text or "a media item")[:200]
    if decision.accepted:
        return (
            f"⚖ Your dispute in “{decision.view.title}” was accepted: for “{item}” the "
            f"expected answer is now “{decision.gold}”. Your score is updated. Thank you!"
        )
    return (
        f"⚖ Your dispute in “{decision.view.title}” was reviewed: for “{item}” the expected "
        f"answer stays “{decision.gold}”."
    )


def unsure_items(title: str, items: list[UnsureItem]) -> str:
    if not items:
        return f"No “Not sure” answers in “{title}” yet."
    lines = [f"❓ Items workers were not sure about in “{title}” (most first):"]
    for item in items:
        lines.append(f"{item.item_id} ({item.count}×): {(item.text or '(media item)')[:200]}")
        lines += [f"  – “{reason[:200]}”" for reason in item.reasons]
    lines.append("Unclear items often mean the guidelines need an example.")
    return "\n".join(lines)


def new_taskset(view: TaskSetView) -> str:
    """The broadcast to workers when a set is published."""
    reward = format_money(view.reward_minor, view.currency)
    pay = f" Reward: {reward} per answer." if view.reward_minor else ""
    return (
        f"🆕 New task: “{view.title}”.{pay} Tap Start to begin.\n"
        "(Turn these messages off in /settings.)"
    )


def broadcast_progress(title: str, progress: BroadcastProgress) -> str:
    head = "📣 Told" if progress.finished else "📣 Telling"
    lines = [
        f"{head} workers about “{title}”: {progress.sent} of {progress.total} told",
    ]
    if progress.blocked:
        lines.append(f"{progress.blocked} blocked the bot (marked inactive)")
    if progress.failed:
        lines.append(f"{progress.failed} could not be reached")
    if not progress.finished:
        lines.append(f"{progress.pending} to go")
    return "\n".join(lines)


def taskset_complete(completed: Completed) -> str:
    return (
        f"🎉 “{completed.view.title}” is complete: all {completed.items} items have their "
        f"answers ({completed.answers} in all). Export the results from /tasksets."
    )


def notify_button(notify: bool) -> str:
    return "🔕 Turn new-task messages off" if notify else "🔔 Turn new-task messages on"
