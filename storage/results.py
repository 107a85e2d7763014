"""Small result types the storage operations return; handlers map each one to a message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from storage.models import AnswerKind, MembershipStatus
from tasksets.replies import ReplyProblem


@dataclass(frozen=True, slots=True)
class LabelOption:
    value: str
    text: str


@dataclass(frozen=True, slots=True)
class TaskSetView:
    """The immutable part of a task set that rendering needs, cached per process."""

    id: int
    name: str
    title: str
    instructions: str
    question: str
    labels: tuple[LabelOption, ...]
    reward_minor: int
    currency: str
    layout: str = "chat"  # "card": one message edited from item to item
    # What workers answer with (tasksets.spec.AnswerType) and the limits a reply must keep.
    answer: str = "labels"
    max_length: int = 1000
    min_seconds: float | None = None
    max_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class UnderReview:
    """The answer a review task shows under its item."""

    kind: AnswerKind
    label_index: int | None  # a label answer's index into the set's labels
    given: str  # the label's button text, the typed text, or "Not sure"
    voice_file_id: str | None  # a voice answer's note, sent with the review


@dataclass(frozen=True, slots=True)
class ServedItem:
    """An item leased to a worker; ``token`` goes into the callback data, nothing else does."""

    token: str
    taskset: TaskSetView
    text: str | None
    media_kind: str | None
    media_ref: str | None
    number: int  # the worker's n-th item in this set, for "Item 12" in the message
    # A review task: the answer to judge (``token`` then names the review's lease).
    review: UnderReview | None = None


class NoItemReason(StrEnum):
    ALL_DONE = "all_done"  # nothing left for this worker
    NO_TASKSET = "no_taskset"  # the worker has not joined a set, or it is gone
    NOT_ACTIVE = "not_active"  # the set is paused or closed
    SUSPENDED = "suspended"
    FAILED_QUALIFICATION = "failed_qualification"
    BLOCKED = "blocked"  # worker banned


@dataclass(frozen=True, slots=True)
class NoItem:
    reason: NoItemReason
    taskset: TaskSetView | None = None
    detail: str | None = None  # e.g. why a worker was suspended


NextItem = ServedItem | NoItem


@dataclass(frozen=True, slots=True)
class GoldFeedback:
    correct: bool
    gold_label: str
    explanation: str | None
    answer_id: int
    training: bool  # part of the qualification


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The worker's standing in the set changed with this answer."""

    status: MembershipStatus
    reason: str | None
    # A suspension reverses the worker's pending money in the set: how much (minor units).
    reversed_minor: int = 0


@dataclass(frozen=True, slots=True)
class Recorded:
    chosen: str  # button text of the choice, "Skipped" / "Not sure", or the typed or voice answer
    gold: GoldFeedback | None
    status_change: StatusChange | None
    next: NextItem
    answer_id: int
    # The worker may undo it (for UNDO_SECONDS): not a gold answer whose feedback showed the
    # right label, nor one that changed their standing.
    undoable: bool
    # A typed or voice answer: the bot's message of the answered item, whose buttons go.
    item_message_id: int | None = None
    # The worker became a reviewer for the set (True) or stopped being one (False).
    reviewer_change: bool | None = None


class Rejection(StrEnum):
    FORGED = "forged"  # no such token, or a malformed choice
    FOREIGN = "foreign"  # another worker's button
    DUPLICATE = "duplicate"  # already answered: a double tap or a redelivered update
    EXPIRED = "expired"  # the lease ran out and the item went to someone else


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Rejection
    # For a duplicate: what was recorded, and how long ago, so the bot can tell a double tap
    # from a worker who tapped again because the reply to their first tap never came.
    chosen: str | None = None
    seconds_since_answer: float | None = None


AnswerOutcome = Recorded | Rejected


@dataclass(frozen=True, slots=True)
class ReplyUnfit:
    """A message that cannot be the answer (empty, too long, a sticker...): nothing is stored
    and the item stays leased to the worker."""

    problem: ReplyProblem
    taskset: TaskSetView


@dataclass(frozen=True, slots=True)
class NoReplyWanted:
    """No item waits for a typed or voice answer: the set is answered with buttons (then
    ``taskset`` says which), or the worker has no item, or it was answered already."""

    taskset: TaskSetView | None


ReplyOutcome = Recorded | Rejected | ReplyUnfit | NoReplyWanted


class EditRefusal(StrEnum):
    NOT_AN_ANSWER = "not_an_answer"  # the edited message carried no typed answer
    UNCHANGED = "unchanged"  # the answer says this already (a repeated edit)
    TOO_LATE = "too_late"  # past the edit window
    CHECKED = "checked"  # a gold answer was judged (and the worker saw the expected text)
    REVIEWED = "reviewed"  # a reviewer took the answer (for a verdict on the text they read)


@dataclass(frozen=True, slots=True)
class Edited:
    text: str  # the answer as it is now stored


EditOutcome = Edited | EditRefusal | ReplyUnfit


@dataclass(frozen=True, slots=True)
class Reviewed:
    """A review's verdict, recorded."""

    verdict: str  # as the reviewer gave it: "Correct", or "Wrong" with the right label
    gold: bool | None  # a gold review: whether the reviewer judged it right
    status_change: StatusChange | None
    reviewer_change: bool | None
    next: NextItem
    # ❌ on a typed or voice answer: the review whose right text the reviewer may send.
    correction_wanted: int | None = None


ReviewOutcome = Reviewed | Rejected


@dataclass(frozen=True, slots=True)
class Undone:
    """The answer is withdrawn and its item leased to the worker again, under a new token."""

    reopened: ServedItem
    # The item sent after the answer was still unanswered, and went back to the pool.
    put_back: bool = False


class UndoRefusal(StrEnum):
    FORGED = "forged"  # not the tapper's answer, or one that offers no Undo
    ALREADY = "already"  # undone already: a double tap or a redelivered update
    TOO_LATE = "too_late"  # past UNDO_SECONDS, by the server's clock
    TAKEN = "taken"  # the item's slot went to someone else, or it was set aside
    NOT_ACTIVE = "not_active"  # the set is paused or closed
    SUSPENDED = "suspended"  # the worker is suspended (or banned) there
    ELSEWHERE = "elsewhere"  # the worker moved to another set
    REVIEWED = "reviewed"  # a reviewer gave their verdict on it already


@dataclass(frozen=True, slots=True)
class UndoRefused:
    reason: UndoRefusal
    # Undone already and the reopened item still leased: it is shown again (the reply to the
    # first tap may never have come).
    reopened: ServedItem | None = None


UndoOutcome = Undone | UndoRefused


# ------------------------------------------------ reads for exports, scores and earnings


@dataclass(frozen=True, slots=True)
class TaskSetProgress:
    taskset_id: int
    name: str
    title: str
    status: str
    items: int
    items_done: int
    gold_items: int
    set_aside: int  # items Telegram refused to show, kept out of the pool
    answers: int
    gold_answers: int
    gold_correct: int

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    item_id: str
    worker_id: int
    kind: AnswerKind
    label: str | None
    seconds: float
    created_at: datetime
    membership: MembershipStatus
    text: str | None = None  # a typed answer


@dataclass(frozen=True, slots=True)
class WorkerScore:
    worker_id: int
    name: str
    status: MembershipStatus
    reason: str | None
    answers: int
    gold_answers: int
    gold_correct: int
    gold_accuracy: float  # smoothed with the Beta prior
    median_seconds: float | None
    labels: dict[str, int]
    earned_minor: int


@dataclass(frozen=True, slots=True)
class Earnings:
    """Sums of the append-only ledger for one currency, in integer minor units."""

    currency: str
    earned_minor: int
    paid_minor: int
    balance_minor: int  # earned minus paid out: what is still to be paid


@dataclass(frozen=True, slots=True)
class StoredItem:
    item_id: str
    text: str | None
    gold: str | None
