"""Every user-facing text in one place, so wording and a later translation live together."""

from __future__ import annotations

import hashlib

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
