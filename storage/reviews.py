"""The review stream: answers chosen for review in their own transaction, reviews handed to
reviewers in the same loop as items, and verdicts recorded with what follows from them.

* Chosen (``queue_for_review``, in the answer's transaction): a random share of the answers,
  "Not sure" answers, a share of typed and voice answers (``tasksets.review.review_reason``),
  and every answer of an item whose confidence stayed below the set's threshold once it got
  its answers. Answers on gold items are never queued: they make the gold reviews.
* Handed out (``lease_review``, in the lease path of ``storage/labeling.py``): a reviewer gets
  the oldest waiting review that is not of their own answer and not one they reviewed; with
  the set's gold ratio, a gold review instead (another worker's answer on a gold item, whose
  verdict is known). A review is a lease like an item's: a token, an expiry.
* Recorded (``Reviews.record_review``, one transaction, idempotent on the token): the verdict,
  the reviewer's reward, and then for a gold review the reviewer's score (and the quality
  rules), else the answer's outcome (``tasksets.review.review_outcome``): settled right,
  settled wrong (a control question missed for its worker, its pending reward reversed, its
  item asks for one more answer), or one more round.

A worker's reviewer level is judged in their own transactions (answers and reviews), so they
are told at once when they reach it or lose it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

from storage.catalog import Policy
from storage.driver import Transaction
from storage.engine import as_utc
from storage.ledger import on_rejected
from storage.models import (
    AnswerKind,
    MembershipStatus,
    ReviewVerdict,
    TaskSetStatus,
)
from storage.results import (
    Rejected,
    Rejection,
    Reviewed,
    ReviewOutcome,
    ServedItem,
    TaskSetView,
    UnderReview,
)
from storage.statements.reviews import (
    ACCEPTANCE,
    INSERT_REVIEW_REWARD,
    ITEM_PROGRESS,
    LEASE_GOLD,
    LIVE_REVIEW,
    NEXT_ROUND,
    ONE_MORE_ANSWER,
    QUEUE_ANSWER,
    QUEUE_ITEM_ANSWERS,
    RECORD_VERDICT,
    REVIEW_BY_ID,
    REVIEW_COUNTS,
    REVIEWER_SCORES,
    SCORE,
    SET_ASIDE_REVIEW,
    SET_CORRECTED_TEXT,
    SET_REVIEWER,
    SET_VERDICTS,
    STANDING_OF,
    VERDICT_PAIRS,
    VERDICTS_OF_ANSWER,
    claim_review_query,
    lease_waiting_statement,
    pick_gold_answer_query,
    pick_waiting_query,
)
from storage.statements.shapes import Standing, read_row
from storage.statements.tallies import ADD_REWARD_TO_TOTALS
from tasksets.money import available_from, to_minor
from tasksets.review import (
    Reason,
    ReviewerPath,
    ReviewRule,
    Verdict,
    agreement,
    correction,
    is_reviewer,
    review_outcome,
    review_reason,
    reviewer_path,
)

if TYPE_CHECKING:
    from storage.labeling import Labeling

LEASE_ATTEMPTS = 3
VOICE_NOTE = "a voice note"
PICK_WAITING = pick_waiting_query(lock=False)


def review_reward_minor(policy: Policy) -> int:
    return to_minor(policy.review.reward, policy.currency) if policy.review else 0


# ------------------------------------------------------- in the answer's transaction


async def queue_for_review(
    tx: Transaction,
    rng: random.Random,
    rule: ReviewRule,
    *,
    answer_id: int,
    taskset_id: int,
    item_id: int,
    kind: AnswerKind,
    confidence: float | None,
    now: datetime,
) -> None:
    """Queue a new answer (not on a gold item) for review if the set's rule chooses it, and
    every answer of its item when the item got its answers with a low confidence."""
    params = {"taskset": taskset_id, "answer": answer_id, "item": item_id, "now": now}
    reason = review_reason(rule, kind.value, rng.random)
    if reason is not None:
        await tx.run(QUEUE_ANSWER, {**params, "reason": reason.value})
    if (
        rule.below_confidence is not None
        and confidence is not None
        and confidence < rule.below_confidence
    ):
        progress = await tx.one(ITEM_PROGRESS, params)
        if progress.answer_count >= progress.needed:
            await tx.run(QUEUE_ITEM_ANSWERS, {**params, "reason": Reason.CONFIDENCE.value})


async def judge_level(
    tx: Transaction, worker_id: int, taskset_id: int, rule: ReviewRule, standing: Standing
) -> bool | None:
    """Promote or demote the worker by the set's reviewer level; returns the new level when it
    changed, else None."""
    wanted = standing.status == MembershipStatus.ACTIVE and is_reviewer(
        rule,
        answers=standing.answers,
        gold_answers=standing.gold_answers,
        gold_correct=standing.gold_correct,
    )
    if wanted == standing.reviewer:
        return None
    await tx.run(SET_REVIEWER, {"worker": worker_id, "taskset": taskset_id, "reviewer": wanted})
    return wanted


# ---------------------------------------------------------- in the lease path


def under_review(view: TaskSetView, row: Any) -> UnderReview:
    """The answer of a REVIEW_CONTENT row as the review shows it."""
    kind = AnswerKind(row.answer_kind)
    index = next((k for k, lab in enumerate(view.labels) if lab.value == row.answer_label), None)
    if kind == AnswerKind.LABEL and index is not None:
        given = view.labels[index].text
    elif kind == AnswerKind.UNSURE:
        given = "Not sure"
    elif kind == AnswerKind.VOICE:
        given = row.answer_text or VOICE_NOTE  # a transcription, when there is one
    else:
        given = row.answer_text or row.answer_label or ""
    return UnderReview(kind, index, given, row.voice_file_id)


def served_review(view: TaskSetView, row: Any, number: int) -> ServedItem:
    return ServedItem(
        row.token, view, row.text, row.media_kind, row.media_ref, number, under_review(view, row)
    )


async def live_review(
    tx: Transaction, params: dict[str, Any], view: TaskSetView, number: int
) -> ServedItem | None:
    """The reviewer's review lease that has not run out, if any."""
    row = await tx.first(LIVE_REVIEW, params)
    return served_review(view, row, number) if row is not None else None


async def lease_review(
    tx: Transaction,
    rng: random.Random,
    policy: Policy,
    view: TaskSetView,
    params: dict[str, Any],
    number: int,
    *,
    lock: bool,
) -> ServedItem | None:
    """A review for the reviewer (``params``: worker, taskset, token, now, expires), or None
    when none is waiting for them. With the set's gold ratio, a gold review instead."""
    if await tx.first(PICK_WAITING, params) is None:
        return None
    review_id = None
    gold_at = policy.last_gold_position
    if gold_at is not None and policy.gold_ratio and rng.random() < policy.gold_ratio:
        review_id = await _lease_gold(tx, rng, gold_at, params)
    if review_id is None:
        statement = LEASE_WAITING[lock]
        for _ in range(LEASE_ATTEMPTS):
            leased = await tx.first(statement, params)
            # None: another reviewer took it between the look and the lease; try the next.
            if leased is not None or not lock:
                break
        review_id = leased.id if leased is not None else None
    if review_id is None:
        return None
    return served_review(view, await tx.one(REVIEW_BY_ID, {"review": review_id}), number)


async def _lease_gold(
    tx: Transaction, rng: random.Random, last_position: int, params: dict[str, Any]
) -> int | None:
    start = rng.randint(0, last_position)
    for query in PICK_GOLD_ANSWER:
        picked = await tx.first(query, {**params, "start": start})
        if picked is not None:
            return int(await tx.value(LEASE_GOLD, {**params, "answer": picked.id}))
    return None


LEASE_WAITING = {
    lock: lease_waiting_statement(pick_waiting_query(lock=lock)) for lock in (False, True)
}
PICK_GOLD_ANSWER = (pick_gold_answer_query(after=True), pick_gold_answer_query(after=False))


# ------------------------------------------------------------------------ verdicts


@dataclass(frozen=True, slots=True)
class WorkerAcceptance:
    worker_id: int
    name: str
    accepted: int  # reviews that found their answer right
    reviewed: int


@dataclass(frozen=True, slots=True)
class ReviewerRecord:
    worker_id: int
    name: str
    reviews: int
    gold_reviews: int
    gold_right: int


@dataclass(frozen=True, slots=True)
class ReviewState:
    """``labelbot reviews NAME``: the stream of one set."""

    waiting: int
    done: int  # reviews of answers (not gold)
    gold_done: int
    acceptance: list[WorkerAcceptance]
    agreement: float | None  # share of consecutive verdicts on one answer that agree
    pairs: int
    reviewers: list[ReviewerRecord]


@dataclass(frozen=True, slots=True)
class StoredCorrection:
    """A reviewer's right label (or, for a typed answer, text) for an answer settled wrong, as
    aggregation counts it."""

    reviewer_id: int
    label: str
    reviewed_at: datetime
    membership: MembershipStatus  # the reviewer's standing in the set


def verdict_text(view: TaskSetView, verdict: ReviewVerdict, corrected: str | None) -> str:
    if verdict == ReviewVerdict.CORRECT:
        return "Correct"
    label = next((lab.text for lab in view.labels if lab.value == corrected), None)
    return f"Wrong → {label}" if label else "Wrong"


class Reviews:
    """Verdicts and the stream's state; works in the transactions of ``Labeling``, whose
    driver, catalog and clock a review shares with an answer, and its public interface for
    the review stream: the quality rules (``enforce_rules``) and the lease path
    (``lease_next``)."""

    def __init__(self, labeling: Labeling) -> None:
        self.labeling = labeling
        self._claim = claim_review_query(lock=labeling.locks_rows)

    async def record_review(
        self, token: str, worker_id: int, correct: bool, corrected: int | None = None
    ) -> ReviewOutcome:
        """Record a verdict on the review named by ``token`` (``corrected``: the index of the
        right label, after ❌ on a label) and lease the reviewer's next task, atomically.
        Idempotent on the token, like an answer."""
        labeling = self.labeling
        return await labeling.driver.transaction(
            self._record, token, worker_id, correct, corrected, labeling.clock()
        )

    async def _record(
        self,
        tx: Transaction,
        token: str,
        worker_id: int,
        correct: bool,
        corrected: int | None,
        now: datetime,
    ) -> ReviewOutcome:
        claim = await tx.first(self._claim, {"token": token})
        if claim is None:
            return Rejected(Rejection.FORGED)
        if claim.worker_id != worker_id:
            return Rejected(Rejection.FOREIGN)
        labeling = self.labeling
        view, policy = await labeling.catalog.get(tx, claim.taskset_id)
        if claim.verdict is not None:
            return Rejected(
                Rejection.DUPLICATE,
                chosen=verdict_text(view, claim.verdict, claim.corrected_label),
                seconds_since_answer=(now - as_utc(claim.reviewed_at)).total_seconds(),
            )
        if policy.review is None or (corrected is not None and correct):
            return Rejected(Rejection.FORGED)
        corrected_label = None
        if corrected is not None:
            if not 0 <= corrected < len(view.labels):
                return Rejected(Rejection.FORGED)
            corrected_label = view.labels[corrected].value
            if corrected_label == claim.answer_label:  # "wrong, it is what they said"
                return Rejected(Rejection.FORGED)
        verdict = ReviewVerdict.CORRECT if correct else ReviewVerdict.WRONG
        params: dict[str, Any] = {
            "review": claim.id,
            "worker": worker_id,
            "taskset": claim.taskset_id,
            "now": now,
        }
        await tx.run(
            RECORD_VERDICT, {**params, "verdict": verdict, "corrected_label": corrected_label}
        )
        await self._pay(tx, claim, policy, worker_id, now)
        standing = read_row(Standing, await tx.one(STANDING_OF, params))
        gold, change = None, None
        if claim.is_gold:
            gold = correct == (claim.answer_label == claim.gold_label)
            standing = read_row(Standing, await tx.one(SCORE, {**params, "correct": int(gold)}))
            if standing.status == MembershipStatus.ACTIVE:
                change = await labeling.enforce_rules(tx, worker_id, view.id, policy, standing, now)
            if change is not None:
                standing = replace(standing, status=change.status, status_reason=change.reason)
        else:
            await self._settle(tx, claim, now)
        level = await judge_level(tx, worker_id, view.id, policy.review, standing)
        if level is not None:
            standing = replace(standing, reviewer=level)
        following = await labeling.lease_next(
            tx, worker_id, view, policy, standing, TaskSetStatus(claim.taskset_status), now
        )
        typed = AnswerKind(claim.answer_kind) in (AnswerKind.TEXT, AnswerKind.VOICE)
        return Reviewed(
            verdict_text(view, verdict, corrected_label),
            gold,
            change,
            level,
            following,
            correction_wanted=claim.id if typed and not correct and not claim.is_gold else None,
        )

    async def set_aside(self, token: str) -> int | None:
        """Keep the leased review from its reviewer for good, because Telegram refuses to show
        it to them (a voice note they do not accept, a media link it cannot fetch); a review
        of an answer waits for another reviewer in its place. Returns the review's id, or None
        when the token names no review waiting for a verdict."""
        return await self.labeling.driver.transaction(self._set_aside, token, self.labeling.clock())

    @staticmethod
    async def _set_aside(tx: Transaction, token: str, now: datetime) -> int | None:
        aside = await tx.first(SET_ASIDE_REVIEW, {"token": token})
        if aside is None:
            return None
        if not aside.is_gold:  # a gold review is the reviewer's own: nobody else waits for it
            params = {
                "taskset": aside.taskset_id,
                "answer": aside.answer_id,
                "reason": aside.reason,
                "round": aside.round + 1,
                "now": now,
            }
            await tx.run(NEXT_ROUND, params)
        return int(aside.id)

    async def set_correction(self, review_id: int, worker_id: int, text: str) -> bool:
        """The right text a reviewer sent after ❌ on a typed or voice answer; False when the
        review is not theirs or not a ❌ (a forged or forwarded prompt)."""
        return await self.labeling.driver.transaction(
            self._set_correction, review_id, worker_id, text
        )

    @staticmethod
    async def _set_correction(tx: Transaction, review_id: int, worker_id: int, text: str) -> bool:
        params = {"review": review_id, "worker": worker_id, "text": text.strip()}
        return bool(await tx.run(SET_CORRECTED_TEXT, params))

    @staticmethod
    async def _pay(
        tx: Transaction, claim: Any, policy: Policy, worker_id: int, now: datetime
    ) -> None:
        amount = review_reward_minor(policy)
        if not amount:
            return
        params = {
            "review": claim.id,
            "worker_id": worker_id,
            "taskset_id": claim.taskset_id,
            "amount_minor": amount,
            "currency": policy.currency,
            "created_at": now,
            "available_at": available_from(now, policy.hold_hours),
            "credit": True,
        }
        await tx.run(INSERT_REVIEW_REWARD, params)
        await tx.run(ADD_REWARD_TO_TOTALS, params)

    @staticmethod
    async def _settle(tx: Transaction, claim: Any, now: datetime) -> None:
        """The answer's outcome after this verdict: settled, or one more round."""
        rows = await tx.rows(VERDICTS_OF_ANSWER, {"answer": claim.answer_id})
        outcome = review_outcome([row.verdict == ReviewVerdict.CORRECT for row in rows])
        params = {
            "taskset": claim.taskset_id,
            "answer": claim.answer_id,
            "worker": claim.answer_worker_id,
            "item": claim.item_id,
            "now": now,
        }
        if outcome is None:
            await tx.run(NEXT_ROUND, {**params, "reason": claim.reason, "round": claim.round + 1})
        elif outcome is False:
            await tx.run(SCORE, {**params, "correct": 0})
            await on_rejected(tx, claim.answer_worker_id, claim.taskset_id, claim.answer_id, now)
            await tx.run(ONE_MORE_ANSWER, params)

    # ------------------------------------------------------------------------ reads

    async def path(self, worker_id: int, taskset_id: int) -> ReviewerPath | None:
        """Where the worker stands against the set's reviewer level; None when the set has
        no review stream or the worker has not joined it."""
        return await self.labeling.driver.transaction(self._path, worker_id, taskset_id)

    async def _path(self, tx: Transaction, worker_id: int, taskset_id: int) -> ReviewerPath | None:
        _view, policy = await self.labeling.catalog.get(tx, taskset_id)
        row = await tx.first(STANDING_OF, {"worker": worker_id, "taskset": taskset_id})
        if policy.review is None or row is None:
            return None
        return reviewer_path(
            policy.review,
            reviewer=row.reviewer,
            answers=row.answers,
            gold_answers=row.gold_answers,
            gold_correct=row.gold_correct,
        )

    async def corrections(self, taskset_id: int) -> dict[int, StoredCorrection | None]:
        """The set's answers that reviews settled wrong, each with the correction that takes
        its place in aggregation (None when no reviewer named the right label)."""
        return await self.labeling.driver.transaction(self._corrections, taskset_id)

    @staticmethod
    async def _corrections(tx: Transaction, taskset_id: int) -> dict[int, StoredCorrection | None]:
        rows = await tx.rows(SET_VERDICTS, {"taskset": taskset_id})
        found: dict[int, StoredCorrection | None] = {}
        for answer_id, group in groupby(rows, key=lambda row: row.answer_id):
            reviews = list(group)
            verdicts = [
                Verdict(row.worker_id, row.verdict == ReviewVerdict.CORRECT, row.corrected)
                for row in reviews
            ]
            wrong, chosen = correction(verdicts)
            if not wrong:
                continue
            row = reviews[verdicts.index(chosen)] if chosen is not None else None
            found[answer_id] = (
                StoredCorrection(row.worker_id, row.corrected, row.reviewed_at, row.membership)
                if row is not None
                else None
            )
        return found

    async def state(self, taskset_id: int) -> ReviewState:
        return await self.labeling.driver.transaction(self._state, taskset_id)

    async def _state(self, tx: Transaction, taskset_id: int) -> ReviewState:
        params = {"taskset": taskset_id}
        counts = await tx.one(REVIEW_COUNTS, params)
        pairs = [
            (row.first == ReviewVerdict.CORRECT, row.second == ReviewVerdict.CORRECT)
            for row in await tx.rows(VERDICT_PAIRS, params)
        ]
        return ReviewState(
            waiting=counts.waiting,
            done=counts.done,
            gold_done=counts.gold_done,
            acceptance=[
                WorkerAcceptance(row.worker_id, row.display_name, row.accepted, row.reviewed)
                for row in await tx.rows(ACCEPTANCE, params)
            ],
            agreement=agreement(pairs),
            pairs=len(pairs),
            reviewers=[
                ReviewerRecord(
                    row.worker_id, row.display_name, row.reviews, row.gold_reviews, row.gold_right
                )
                for row in await tx.rows(REVIEWER_SCORES, params)
            ],
        )
