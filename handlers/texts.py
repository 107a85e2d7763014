"""Every user-facing text in one place, so wording and a later translation live together."""

from __future__ import annotations

import hashlib
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
from storage.results import (
    Earnings,
    GoldFeedback,
    NoItem,
    NoItemReason,
    Rejection,
    TaskSetView,
    WorkerScore,
)
from tasksets.money import format_money
from tasksets.spec import TaskSetSpec

SKIP_BUTTON = "Skip"
UNSURE_BUTTON = "Not sure"
DISPUTE_BUTTON = "Dispute"

HELP = (
    "I send you items to label, one at a time. Tap the button that fits best; "
    "the next item comes at once.\n\n"
    "“Skip” passes an item you cannot judge; “Not sure” tells us it is ambiguous.\n"
    "Some items are control questions with a known answer: they look like any other item, "
    "and your accuracy on them is how we know your labels are good.\n\n"
    "/next – the current item again\n"
    "/me – your answers, accuracy and earnings\n"
    "/earnings – your balance, pending and paid\n"
    "/leaderboard – the top workers and your rank\n"
    "/guidelines – how to label this task\n"
    "/help – this message"
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
DISPUTE_RECORDED = "Thanks – a coordinator will review this control question."
SLOW_DOWN = "Slow down a little, please: I skipped your last few messages."
SLOW_DOWN_ALERT = "Slow down a little, please – tap again in a moment."


def greeting(first_name: str, taskset: TaskSetView) -> str:
    return f"Hi {first_name}! You are labeling “{taskset.title}”.\n\n" + guidelines(taskset)


def guidelines(taskset: TaskSetView) -> str:
    labels = ", ".join(label.text for label in taskset.labels)
    body = taskset.instructions.strip() or taskset.question
    return f"Guidelines: {body}\n\nLabels: {labels}."


def answered(body: str, chosen: str) -> str:
    return f"{body}\n\n✓ Your answer: {chosen}"


def expired(body: str) -> str:
    return f"{body}\n\n⌛ Timed out – this item went to someone else."


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


def passed_training(reason: str | None) -> str:
    return f"🎓 You passed the training ({reason}). Now the real items begin."


def me(view: TaskSetView, score: WorkerScore, rank: int, workers: int) -> str:
    if score.gold_answers:
        accuracy = (
            f"{score.gold_correct} of {score.gold_answers} control questions right "
            f"(accuracy estimate {score.gold_accuracy:.0%})"
        )
    else:
        accuracy = "no control questions answered yet"
    lines = [
        f"“{view.title}”",
        f"Answers: {score.answers}",
        f"Accuracy: {accuracy}",
        f"Rank: {rank} of {workers}",
        f"Earned here: {format_money(score.earned_minor, view.currency)}",
    ]
    if score.status != "active":
        lines.append(f"Status: {score.status} ({score.reason})")
    return "\n".join(lines)


LEADERBOARD_SIZE = 10


def pseudonym(worker_id: int) -> str:
    """A stable public name that does not reveal who the worker is."""
    digest = hashlib.blake2s(str(worker_id).encode(), digest_size=3).hexdigest().upper()
    return f"Worker {digest}"


def leaderboard(view: TaskSetView, ranked: list[WorkerScore], caller: int) -> str:
    lines = [f"🏆 “{view.title}”"]
    for rank, score in enumerate(ranked[:LEADERBOARD_SIZE], 1):
        name = "you" if score.worker_id == caller else pseudonym(score.worker_id)
        lines.append(f"{rank}. {name} – {score.answers} answers, {score.gold_accuracy:.0%}")
    mine = next((rank for rank, s in enumerate(ranked, 1) if s.worker_id == caller), None)
    if mine is not None and mine > LEADERBOARD_SIZE:
        lines.append(f"…\n{mine}. you – {ranked[mine - 1].answers} answers")
    if mine is None:
        lines.append("Label a few items to appear here.")
    return "\n".join(lines)


def earnings(rows: list[Earnings]) -> str:
    if not rows:
        return "No earnings yet: every answer you give adds to your balance."
    lines = []
    for row in rows:
        lines.append(
            f"Earned: {format_money(row.earned_minor, row.currency)}\n"
            f"Paid out: {format_money(row.paid_minor, row.currency)}\n"
            f"Pending (balance): {format_money(row.balance_minor, row.currency)}"
        )
    return "\n\n".join(lines)


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
        f"Labels: {', '.join(label.text for label in spec.labels)}",
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
    lines += [
        f"{item.item_id} ({item.count}×): {(item.text or '(media item)')[:200]}" for item in items
    ]
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


def settings(notify: bool) -> str:
    state, other = ("on", "off") if notify else ("off", "on")
    return f"⚙ Settings\nMessages about new tasks: {state}.\nTap the button to turn them {other}."


def notify_button(notify: bool) -> str:
    return "🔕 Turn new-task messages off" if notify else "🔔 Turn new-task messages on"
