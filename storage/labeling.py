"""The labeling hot path: hand out items as leases and record answers, each atomically.

Everything here runs on the database driver (``storage/driver.py``) with the Core statements of
``storage/statements/``: no ORM unit of work, no per-tap compilation, and as few round trips as
the invariants allow. A tap is one transaction that checks the lease token, stores the answer,
frees the lease, credits the ledger, updates the worker's standing and leases the next item.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from storage.catalog import Policy, TaskSetCatalog
from storage.driver import Driver, Transaction, open_driver
from storage.engine import as_utc, is_sqlite
from storage.ledger import on_suspended
from storage.models import (
    COUNTED_KINDS,
    AnswerKind,
    AssignmentState,
    MembershipStatus,
    TaskSetStatus,
    WorkerStatus,
)
from storage.results import (
    AnswerOutcome,
    Edited,
    EditOutcome,
    EditRefusal,
    GoldFeedback,
    NextItem,
    NoItem,
    NoItemReason,
    NoReplyWanted,
    Recorded,
    Rejected,
    Rejection,
    ReplyOutcome,
    ReplyUnfit,
    ServedItem,
    StatusChange,
    TaskSetView,
    Undone,
    UndoOutcome,
    UndoRefusal,
    UndoRefused,
)
from storage.reviews import judge_level, lease_review, live_review, queue_for_review
from storage.statements.answers import (
    INSERT_ANSWER,
    INSERT_REWARD,
    MARK_ANSWERED,
    REFUSE_LATE_ANSWER,
    SETTLE_ITEM,
    STANDING_AFTER_ANSWER,
    answer_writes_statement,
    claim_query,
)
from storage.statements.leases import (
    EXPIRE_DUE,
    EXPIRE_LEASE,
    EXPIRE_WORKER,
    EXPIRE_WORKER_IN_SET,
    FREE_SLOTS,
    INSERT_ASSIGNMENT,
    LIVE_LEASE,
    SET_ASIDE_ITEM,
    TAKE_SLOT,
    WORKER_INACTIVE,
    WORKER_STATE,
    lease_and_assign_statement,
    lease_regular_statement,
    pick_gold_query,
    pick_regular_query,
)
from storage.statements.quality import (
    CHANGE_STATUS,
    CROWD_COUNTS,
    ITEM_VOTES,
    RECENT_ANSWERS,
    REPLACE_ANSWERS_OF,
    SET_CONFIDENCE,
    SET_CONFIDENCE_AND_GROW,
)
from storage.statements.replies import (
    EDIT_ANSWER,
    LATEST_ASSIGNMENT,
    NOTE_ITEM_MESSAGE,
    REPLY_ANSWER,
)
from storage.statements.shapes import Standing, read_row
from storage.statements.tallies import ADD_REWARD_TO_TOTALS, MOVE_BUCKETS, UPSERT_TALLIES
from storage.statements.undo import (
    DROP_EMPTY_TALLIES,
    DROP_FRESH_LEASES,
    DROP_REVIEWS,
    LEAVE_BUCKETS,
    NEXT_STILL_LEASED,
    REOPEN_ITEM,
    REOPEN_LEASE,
    SET_UNSURE_REASON,
    STANDING_AFTER_UNDO,
    UNCOUNT_TALLIES,
    WITHDRAW_ANSWER,
    undo_claim_query,
)
from storage.undo import credit_again, take_back_money
from tasksets.money import available_from
from tasksets.qualification import qualification_verdict
from tasksets.quality import WorkerRecord, item_posterior, smoothed_accuracy, suspension_reason
from tasksets.replies import Reply, reply_problem
from tasksets.standing import MIN_CONTROL_ANSWERS, Period, min_control, period_start
from tasksets.text import gold_text_matches

# A tap (a label's index, Skip or Not sure) or a worker's message (a typed or voice answer).
Choice = int | Literal["skip", "unsure"] | Reply
SKIPPED_TEXT = {AnswerKind.SKIP: "Skipped", AnswerKind.UNSURE: "Not sure"}
# A typed answer may be corrected by editing its message for this long.
EDIT_WINDOW = timedelta(minutes=10)
# How often (in a worker's answers) the rules that read recent history run.
RULE_CHECK_EVERY = 5
LEASE_ATTEMPTS = 3
# How long a worker may undo an answer, by the server's clock.
UNDO_SECONDS = 30


def chosen_text(
    view: TaskSetView,
    kind: AnswerKind,
    label: str | None,
    text: str | None = None,
    voice_seconds: int | None = None,
) -> str:
    """What the worker answered: the button's text, the typed text, or the voice note."""
    match kind:
        case AnswerKind.LABEL:
            return next((lab.text for lab in view.labels if lab.value == label), label or "")
        case AnswerKind.TEXT:
            return text or ""
        case AnswerKind.VOICE:
            return f"voice note, {voice_seconds} s"
        case _:
            return SKIPPED_TEXT[kind]


def judge_qualification(
    standing: Standing, policy: Policy, *, out_of_items: bool
) -> StatusChange | None:
    """The status a qualifying worker moves to, by the set's qualification rule."""
    if standing.status != MembershipStatus.QUALIFYING or policy.qualification is None:
        return None
    verdict = qualification_verdict(
        policy.qualification,
        standing.gold_answers,
        standing.gold_correct,
        out_of_items=out_of_items,
    )
    if verdict is None:
        return None
    status = MembershipStatus.ACTIVE if verdict.passed else MembershipStatus.FAILED
    return StatusChange(status, verdict.reason)


def gone_because(row: Any, standing: Standing) -> UndoRefusal | None:
    """Why an answered item is no longer the worker's to answer again, if it is not."""
    if row.worker_status == WorkerStatus.BANNED or standing.status not in (
        MembershipStatus.ACTIVE,
        MembershipStatus.QUALIFYING,
    ):
        return UndoRefusal.SUSPENDED
    if row.taskset_status != TaskSetStatus.ACTIVE:
        return UndoRefusal.NOT_ACTIVE
    if row.current_taskset_id != row.taskset_id:
        return UndoRefusal.ELSEWHERE
    if row.set_aside_reason is not None:
        return UndoRefusal.TAKEN
    return None


async def run_statement(tx: Transaction, statement: Any, params: dict[str, Any]) -> int:
    return await tx.run(statement, params)


class Labeling:
    """Leases and answers. One instance per process, shared by all handlers."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: timedelta,
        clock: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self.catalog = TaskSetCatalog()
        self.lease = lease
        self.clock = clock
        self.rng = rng
        pool_size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
        self._driver = open_driver(engine.url, pool_size=pool_size)
        # SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs row locks.
        self._sqlite = is_sqlite(engine.url)
        lock = not self._sqlite
        self.next_item_query = pick_regular_query(lock=lock)
        lease_regular = lease_regular_statement(self.next_item_query)
        # Writes that need not wait for each other's results: one statement each on SQLite,
        # merged into one statement on PostgreSQL (see answer_writes_statement).
        self._merge_writes = not self._sqlite
        self._lease_regular = (
            lease_and_assign_statement(lease_regular) if self._merge_writes else lease_regular
        )
        self._answer_writes = answer_writes_statement()
        self._pick_gold = (pick_gold_query(after=True), pick_gold_query(after=False))
        self._claim = claim_query(lock=lock)
        self._undo_claim = undo_claim_query(lock=lock)

    @property
    def driver(self) -> Driver:
        return self._driver

    @property
    def locks_rows(self) -> bool:
        """PostgreSQL: reads that lead to a write lock their rows (SQLite: BEGIN IMMEDIATE)."""
        return not self._sqlite

    async def close(self) -> None:
        await self._driver.close()

    async def view(self, taskset_id: int) -> TaskSetView:
        """A task set's rendering data; read once per process."""
        entry = self.catalog.cached(taskset_id)
        if entry is None:
            entry = await self._driver.transaction(self.catalog.get, taskset_id)
        return entry[0]

    async def next_item_for(self, worker_id: int) -> NextItem:
        """The item to show this worker now: their live lease if they have one, else a new one."""
        return await self._driver.transaction(self._next_item_for, worker_id, self.clock())

    async def _next_item_for(self, tx: Transaction, worker_id: int, now: datetime) -> NextItem:
        state = await tx.first(WORKER_STATE, {"worker": worker_id})
        if state is None or state.current_taskset_id is None or state.status is None:
            return NoItem(NoItemReason.NO_TASKSET)  # never joined, or the set is gone
        view, policy = await self.catalog.get(tx, state.current_taskset_id)
        if state.worker_status == WorkerStatus.BANNED:
            return NoItem(NoItemReason.BLOCKED, view)
        standing = read_row(Standing, state)
        params = {"worker": worker_id, "taskset": view.id, "now": now}
        live = await tx.first(LIVE_LEASE, params)
        if live is not None:
            return ServedItem(
                live.token,
                view,
                live.text,
                live.media_kind,
                live.media_ref,
                standing.answers + 1,
            )
        if standing.reviewer and policy.review is not None:
            review = await live_review(tx, params, view, standing.answers + 1)
            if review is not None:
                return review
        return await self.lease_next(
            tx, worker_id, view, policy, standing, TaskSetStatus(state.taskset_status), now
        )

    # ---------------------------------------- shared with the review stream (storage/reviews.py)
    # A verdict is recorded in the same loop as an answer: in the caller's transaction, the
    # reviewer's standing is judged by the same quality rules and their next task comes from
    # the same lease path. These two methods are all that ``Reviews`` calls besides the driver,
    # the catalog and the clock.

    async def lease_next(
        self,
        tx: Transaction,
        worker_id: int,
        view: TaskSetView,
        policy: Policy,
        standing: Standing,
        taskset_status: TaskSetStatus,
        now: datetime,
    ) -> NextItem:
        """Lease the worker's next task in the set, in ``tx``: a review (for a reviewer, when
        one waits for them), a gold item (qualifying, or by the set's gold ratio) or a regular
        one; or say why there is none (suspended, failed qualification, set not active, all
        done). ``standing`` is the worker's standing after what this transaction changed."""
        if standing.status == MembershipStatus.SUSPENDED:
            return NoItem(NoItemReason.SUSPENDED, view, standing.status_reason)
        if standing.status == MembershipStatus.FAILED:
            return NoItem(NoItemReason.FAILED_QUALIFICATION, view, standing.status_reason)
        if taskset_status != TaskSetStatus.ACTIVE:
            return NoItem(NoItemReason.NOT_ACTIVE, view)
        token = secrets.token_urlsafe(12)
        params = {
            "taskset": view.id,
            "worker": worker_id,
            "token": token,
            "now": now,
            "expires": now + self.lease,
        }
        if standing.reviewer and policy.review is not None:
            review = await lease_review(
                tx, self.rng, policy, view, params, standing.answers + 1, lock=not self._sqlite
            )
            if review is not None:
                return review
        row, assigned = None, False
        if standing.status == MembershipStatus.QUALIFYING:
            row = await self._lease_gold(tx, policy, params)
            if row is None:
                # Fewer gold items than the qualification asks for: judge on what was seen.
                change = judge_qualification(standing, policy, out_of_items=True)
                assert change is not None
                await self._change_status(tx, worker_id, view.id, change)
                if change.status == MembershipStatus.FAILED:
                    return NoItem(NoItemReason.FAILED_QUALIFICATION, view, change.reason)
        elif policy.gold_ratio and self.rng.random() < policy.gold_ratio:
            row = await self._lease_gold(tx, policy, params)
        if row is None:
            for _ in range(LEASE_ATTEMPTS):
                row = await tx.first(self._lease_regular, params)
                # Nothing returned: nothing left, unless another process closed the picked item
                # between pick and update; only then is a retry worth it.
                if row is not None or self._sqlite:
                    break
            assigned = self._merge_writes
        if row is None:
            return NoItem(NoItemReason.ALL_DONE, view)
        if not assigned:
            await tx.run(INSERT_ASSIGNMENT, {**params, "item": row.id})
        return ServedItem(
            token, view, row.text, row.media_kind, row.media_ref, standing.answers + 1
        )

    async def enforce_rules(
        self,
        tx: Transaction,
        worker_id: int,
        taskset_id: int,
        policy: Policy,
        standing: Standing,
        now: datetime,
    ) -> StatusChange | None:
        """Judge an active worker by the set's quality rules (gold accuracy from ``standing``,
        speed and label mix from their recent answers), in ``tx``; when they fail, suspend them
        as ``_apply_change`` does and return the change, else None."""
        rules = policy.rules
        window = max(rules.dominant_window, rules.min_answers_for_speed)
        recent = await tx.rows(
            RECENT_ANSWERS, {"taskset": taskset_id, "worker": worker_id, "window": window}
        )
        counts = await tx.rows(CROWD_COUNTS, {"taskset": taskset_id})
        record = WorkerRecord(
            gold_answers=standing.gold_answers,
            gold_correct=standing.gold_correct,
            recent_seconds=[answer.seconds for answer in recent],
            recent_labels=[answer.label for answer in recent if answer.label is not None],
            crowd_counts={row.label: row.answers for row in counts},
        )
        reason = suspension_reason(record, rules)
        if reason is None:
            return None
        change = StatusChange(MembershipStatus.SUSPENDED, reason)
        return await self._apply_change(tx, worker_id, taskset_id, change, now)

    async def _lease_gold(self, tx: Transaction, policy: Policy, params: dict[str, Any]) -> Any:
        # Gold items have no quota: they are never "taken", only never shown twice to one worker.
        if policy.last_gold_position is None:
            return None
        start = self.rng.randint(0, policy.last_gold_position)
        for query in self._pick_gold:
            row = await tx.first(query, {**params, "start": start})
            if row is not None:
                return row
        return None

    async def _change_status(
        self, tx: Transaction, worker_id: int, taskset_id: int, change: StatusChange
    ) -> None:
        await tx.run(
            CHANGE_STATUS,
            {
                "worker": worker_id,
                "taskset": taskset_id,
                "new_status": change.status,
                "reason": change.reason,
            },
        )

    async def record_answer(
        self, token: str, worker_id: int, choice: Choice, *, message_id: int | None = None
    ) -> AnswerOutcome:
        """Store one answer for the lease named by ``token`` and lease the next item, atomically.

        Idempotent on the token: a double tap, a redelivered update or a forged button changes
        nothing and says why.
        """
        return await self._driver.transaction(
            self._record_answer, token, worker_id, choice, message_id, self.clock()
        )

    async def _record_answer(
        self,
        tx: Transaction,
        token: str,
        worker_id: int,
        choice: Choice,
        message_id: int | None,
        now: datetime,
    ) -> AnswerOutcome:
        claim = await tx.first(self._claim, {"token": token})
        return await self._answer_claim(tx, claim, worker_id, choice, message_id, None, now)

    async def record_reply(
        self, worker_id: int, reply_message_id: int, reply: Reply
    ) -> ReplyOutcome:
        """Store a worker's message as the typed or voice answer to their leased item, and lease
        the next one, atomically (as a tap does).

        Idempotent on (worker, message): a redelivered update stores nothing and never answers
        the next item with it. A message that does not fit the set stores nothing either, and
        the item stays leased.
        """
        return await self._driver.transaction(
            self._record_reply, worker_id, reply_message_id, reply, self.clock()
        )

    async def _record_reply(
        self, tx: Transaction, worker_id: int, reply_message_id: int, reply: Reply, now: datetime
    ) -> ReplyOutcome:
        key = {"worker": worker_id, "reply_message_id": reply_message_id}
        earlier = await tx.first(REPLY_ANSWER, key)
        if earlier is not None:
            return await self._earlier_reply(tx, earlier, now)
        lease = await tx.first(LATEST_ASSIGNMENT, {"worker": worker_id})
        if lease is None:
            return NoReplyWanted(None)
        view, _policy = await self.catalog.get(tx, lease.taskset_id)
        waiting = lease.state in (AssignmentState.LEASED, AssignmentState.EXPIRED)
        if view.answer == "labels" or not waiting:
            return NoReplyWanted(view)
        problem = reply_problem(view, reply)
        if problem is not None:
            return ReplyUnfit(problem, view)
        claim = await tx.first(self._claim, {"token": lease.token})
        if not self._sqlite:
            # Again under the lease's row lock: a delivery of the same message in another
            # process may have committed since the first look, and leased the next item.
            earlier = await tx.first(REPLY_ANSWER, key)
            if earlier is not None:
                return await self._earlier_reply(tx, earlier, now)
        # The item's message stays noted on the answered lease (a tap notes the tapped one).
        item_message_id = claim.message_id if claim is not None else None
        return await self._answer_claim(
            tx, claim, worker_id, reply, item_message_id, reply_message_id, now
        )

    async def _earlier_reply(self, tx: Transaction, earlier: Any, now: datetime) -> Rejected:
        """The message was stored already: a redelivered update."""
        view, _policy = await self.catalog.get(tx, earlier.taskset_id)
        return Rejected(
            Rejection.DUPLICATE,
            chosen=chosen_text(view, earlier.kind, None, earlier.text, earlier.voice_seconds),
            seconds_since_answer=(now - as_utc(earlier.created_at)).total_seconds(),
        )

    async def edit_reply(self, worker_id: int, reply_message_id: int, text: str) -> EditOutcome:
        """The worker edited the message that carried their typed answer: within EDIT_WINDOW
        the edit replaces the answer, unless a gold answer was judged already or a reviewer took
        it. A repeated edit
        (a redelivered update) changes nothing and says so."""
        return await self._driver.transaction(
            self._edit_reply, worker_id, reply_message_id, text, self.clock()
        )

    async def _edit_reply(
        self, tx: Transaction, worker_id: int, reply_message_id: int, text: str, now: datetime
    ) -> EditOutcome:
        answer = await tx.first(
            REPLY_ANSWER, {"worker": worker_id, "reply_message_id": reply_message_id}
        )
        if answer is None or answer.kind != AnswerKind.TEXT:
            return EditRefusal.NOT_AN_ANSWER
        if answer.text == text.strip():
            return EditRefusal.UNCHANGED
        if answer.is_gold:  # the worker has seen the expected text since
            return EditRefusal.CHECKED
        if answer.reviewed:
            return EditRefusal.REVIEWED
        if now - as_utc(answer.created_at) > EDIT_WINDOW:
            return EditRefusal.TOO_LATE
        view, _policy = await self.catalog.get(tx, answer.taskset_id)
        problem = reply_problem(view, Reply(text=text))
        if problem is not None:
            return ReplyUnfit(problem, view)
        await tx.run(EDIT_ANSWER, {"answer_id": answer.id, "text": text.strip(), "now": now})
        return Edited(text.strip())

    async def note_item_message(self, token: str, message_id: int) -> None:
        """Remember the bot's message showing the leased item of a set answered by typing or
        voice, so the answer, which comes as a message of the worker's, can take its buttons."""
        await self._driver.transaction(self._note_item_message, token, message_id)

    @staticmethod
    async def _note_item_message(tx: Transaction, token: str, message_id: int) -> None:
        await tx.run(NOTE_ITEM_MESSAGE, {"token": token, "message_id": message_id})

    async def _answer_claim(
        self,
        tx: Transaction,
        claim: Any,
        worker_id: int,
        choice: Choice,
        message_id: int | None,
        reply_message_id: int | None,
        now: datetime,
    ) -> AnswerOutcome:
        """Store ``choice`` for the claimed lease (None: no lease has the token), close the
        lease and lease the next item; or say why not."""
        if claim is None:
            return Rejected(Rejection.FORGED)
        if claim.worker_id != worker_id:
            return Rejected(Rejection.FOREIGN)
        view, policy = await self.catalog.get(tx, claim.taskset_id)
        if claim.state == AssignmentState.ANSWERED:
            if claim.answer_kind is None or claim.withdrawn_at is not None:
                # PostgreSQL: we waited on the row lock of a tap committed meanwhile, and the
                # row was re-read but the joined answer not: a double tap, answered just now.
                return Rejected(Rejection.DUPLICATE, seconds_since_answer=0.0)
            return Rejected(
                Rejection.DUPLICATE,
                chosen=chosen_text(
                    view,
                    claim.answer_kind,
                    claim.answer_label,
                    claim.answer_text,
                    claim.answer_voice_seconds,
                ),
                seconds_since_answer=(now - as_utc(claim.answered_at)).total_seconds(),
            )
        if isinstance(choice, int) and not 0 <= choice < len(view.labels):
            return Rejected(Rejection.FORGED)
        if claim.state == AssignmentState.REFUSED:
            return Rejected(Rejection.EXPIRED)
        # The sweep gave an expired lease's slot back; take the late answer only if a slot is
        # still free. If not, the worker is told so, and that is final: a repeat of the same
        # tap must not be stored later, when the item happens to ask for another answer.
        if (
            claim.state == AssignmentState.EXPIRED
            and not claim.is_gold
            and not await tx.run(TAKE_SLOT, {"item": claim.item_id})
        ):
            await tx.run(REFUSE_LATE_ANSWER, {"assignment_id": claim.id})
            return Rejected(Rejection.EXPIRED)

        label = text = voice = None
        if isinstance(choice, Reply):
            text = choice.text.strip() if choice.text is not None else None
            voice = choice.voice
            kind = AnswerKind.TEXT if text is not None else AnswerKind.VOICE
        elif isinstance(choice, int):
            label, kind = view.labels[choice].value, AnswerKind.LABEL
        else:
            kind = AnswerKind(choice)
        chosen = chosen_text(view, kind, label, text, voice.seconds if voice else None)
        counted = kind in COUNTED_KINDS
        graded = claim.is_gold and counted
        if text is not None:
            correct = graded and gold_text_matches(claim.gold_label, text, policy.gold_max_wer)
        else:
            correct = graded and label == claim.gold_label
        # The lease was reopened by an undo: its answer's money is given back, not credited anew.
        again = claim.answer_id is not None
        credit = counted and policy.reward_minor > 0
        write = {
            "assignment_id": claim.id,
            "message_id": message_id,
            "worker_id": worker_id,
            "item_id": claim.item_id,
            "taskset_id": claim.taskset_id,
            "kind": kind,
            "label": label,
            "text": text,
            "voice_file_id": voice.file_id if voice else None,
            "voice_seconds": voice.seconds if voice else None,
            "voice_bytes": voice.size if voice else None,
            "reply_message_id": reply_message_id,
            "seconds": max(0.0, (now - as_utc(claim.served_at)).total_seconds()),
            "created_at": now,
            "added": int(counted),
            "credit": credit and not again,
            "amount_minor": policy.reward_minor,
            "currency": policy.currency,
            "gold": int(graded),
            "correct": int(correct),
            "available_at": available_from(now, policy.hold_hours),
            "day": period_start(Period.DAY, now),
            "week": period_start(Period.WEEK, now),
            "min_set": min_control(policy.last_gold_position is not None),
            "min_all": MIN_CONTROL_ANSWERS,
        }
        answer_id, standing = await self._write_answer(tx, write)
        if credit and again:
            await credit_again(tx, {**write, "answer_id": answer_id, "credit": True}, now)
        review = policy.review
        confidence = None
        if (
            kind == AnswerKind.LABEL
            and not claim.is_gold
            and (policy.overlap_confidence is not None or (review and review.below_confidence))
        ):
            confidence = await self._update_confidence(tx, claim.item_id, view, policy)
        if review is not None and not claim.is_gold:
            await queue_for_review(
                tx,
                self.rng,
                review,
                answer_id=answer_id,
                taskset_id=claim.taskset_id,
                item_id=claim.item_id,
                kind=kind,
                confidence=confidence,
                now=now,
            )
        gold = None
        if graded:
            gold = GoldFeedback(
                correct=correct,
                gold_label=chosen_text(view, AnswerKind.LABEL, claim.gold_label),
                explanation=claim.explanation,
                answer_id=answer_id,
                training=standing.status == MembershipStatus.QUALIFYING,
            )
        change = judge_qualification(standing, policy, out_of_items=False)
        if change is not None:
            change = await self._apply_change(tx, worker_id, view.id, change, now)
        elif standing.status == MembershipStatus.ACTIVE and (
            graded or standing.answers % RULE_CHECK_EVERY == 0
        ):
            change = await self.enforce_rules(tx, worker_id, view.id, policy, standing, now)
        if change is not None:
            standing = replace(standing, status=change.status, status_reason=change.reason)
        level = None
        if review is not None:
            level = await judge_level(tx, worker_id, view.id, review, standing)
            if level is not None:
                standing = replace(standing, reviewer=level)
        following = await self.lease_next(
            tx, worker_id, view, policy, standing, TaskSetStatus(claim.taskset_status), now
        )
        return Recorded(
            chosen,
            gold,
            change,
            following,
            answer_id,
            not graded and change is None and view.answer == "labels",  # undoable
            item_message_id=claim.message_id,
            reviewer_change=level,
        )

    async def _apply_change(
        self, tx: Transaction, worker_id: int, taskset_id: int, change: StatusChange, now: datetime
    ) -> StatusChange:
        """Move the worker to the new status; a suspension takes their answers out (each item
        asks for one more) and reverses their pending money in the set."""
        await self._change_status(tx, worker_id, taskset_id, change)
        if change.status == MembershipStatus.SUSPENDED:
            await tx.run(REPLACE_ANSWERS_OF, {"worker": worker_id, "taskset": taskset_id})
            reversed_money = await on_suspended(tx, worker_id, taskset_id, change.reason, now)
            if reversed_money is not None:
                change = replace(change, reversed_minor=reversed_money.amount_minor)
        return change

    async def _write_answer(self, tx: Transaction, params: dict[str, Any]) -> tuple[int, Standing]:
        """Store the answer, close its lease, settle the item, credit the reward and count it
        in the worker's standing; returns the answer id and the new standing."""
        if self._merge_writes:
            row = await tx.one(self._answer_writes, params)
            return row.answer_id, read_row(Standing, row)
        answer_id: int = await tx.value(INSERT_ANSWER, params)
        await tx.run(MARK_ANSWERED, params)
        await tx.run(SETTLE_ITEM, params)
        if params["credit"]:
            await tx.run(INSERT_REWARD, {**params, "answer_id": answer_id})
            await tx.run(ADD_REWARD_TO_TOTALS, params)
        if params["added"]:
            await tx.run(UPSERT_TALLIES, params)
            await tx.run(MOVE_BUCKETS, params)
        return answer_id, read_row(Standing, await tx.one(STANDING_AFTER_ANSWER, params))

    async def _update_confidence(
        self,
        tx: Transaction,
        item_id: int,
        view: TaskSetView,
        policy: Policy,
        *,
        grow: bool = True,
    ) -> float:
        """The item's posterior after this answer, stored; with dynamic overlap, a contested
        item that reached its quota asks for one more answer (unless not ``grow``: after an
        undo)."""
        index = {lab.value: k for k, lab in enumerate(view.labels)}
        votes = await tx.rows(ITEM_VOTES, {"item": item_id})
        _best, confidence = item_posterior(
            [
                (index[vote.label], smoothed_accuracy(vote.gold_correct, vote.gold_answers))
                for vote in votes
                if vote.label in index
            ],
            len(view.labels),
        )
        contested = (
            grow
            and policy.overlap_confidence is not None
            and confidence < policy.overlap_confidence
        )
        await tx.run(
            SET_CONFIDENCE_AND_GROW if contested else SET_CONFIDENCE,
            {"item": item_id, "confidence": confidence, "max": policy.overlap_max},
        )
        return confidence

    async def undo_answer(self, answer_id: int, token: str, worker_id: int) -> UndoOutcome:
        """Withdraw the worker's answer (the one given on the lease ``token``) and lease its item
        to them again, in one transaction that takes back every counter the answer moved: the
        item's, the worker's standing, tallies and rank buckets, and its money (a reversal).

        Idempotent: once undone, the lease has a new token, so a second tap or a redelivered
        update finds the answer undone and changes nothing.
        """
        return await self._driver.transaction(
            self._undo_answer, answer_id, token, worker_id, self.clock()
        )

    async def _undo_answer(
        self, tx: Transaction, answer_id: int, token: str, worker_id: int, now: datetime
    ) -> UndoOutcome:
        row = await tx.first(self._undo_claim, {"answer_id": answer_id})
        if row is None or row.worker_id != worker_id:
            return UndoRefused(UndoRefusal.FORGED)
        view, policy = await self.catalog.get(tx, row.taskset_id)
        standing = read_row(Standing, row)
        if row.token != token or row.withdrawn_at is not None:
            reopened = None
            if row.withdrawn_at is not None and row.state == AssignmentState.LEASED:
                reopened = ServedItem(
                    row.token, view, row.text, row.media_kind, row.media_ref, standing.answers + 1
                )
            return UndoRefused(UndoRefusal.ALREADY, reopened)
        kind = AnswerKind(row.kind)
        if (row.is_gold and kind == AnswerKind.LABEL) or view.answer != "labels":
            return UndoRefused(UndoRefusal.FORGED)  # never offered an Undo
        if now - as_utc(row.created_at) > timedelta(seconds=UNDO_SECONDS):
            return UndoRefused(UndoRefusal.TOO_LATE)
        refusal = gone_because(row, standing)
        if refusal is not None:
            return UndoRefused(refusal)
        if row.reviewed:
            return UndoRefused(UndoRefusal.REVIEWED)
        counted = kind == AnswerKind.LABEL
        answered = as_utc(row.created_at)
        params = {
            "answer_id": answer_id,
            "assignment_id": row.assignment_id,
            "worker_id": worker_id,
            "taskset_id": row.taskset_id,
            "item_id": row.item_id,
            "removed": int(counted),
            "now": now,
            # The tallies the answer counted in: those of its own day and week.
            "day": period_start(Period.DAY, answered),
            "week": period_start(Period.WEEK, answered),
        }
        if not await tx.run(REOPEN_ITEM, params):
            return UndoRefused(UndoRefusal.TAKEN)
        await tx.run(WITHDRAW_ANSWER, params)
        await tx.run(DROP_REVIEWS, params)
        await take_back_money(tx, answer_id, now)
        if counted:
            await tx.run(LEAVE_BUCKETS, params)
            await tx.run(UNCOUNT_TALLIES, params)
            await tx.run(DROP_EMPTY_TALLIES, params)
            if not row.is_gold:
                await self._update_confidence(tx, row.item_id, view, policy, grow=False)
        standing = read_row(Standing, await tx.one(STANDING_AFTER_UNDO, params))
        put_back = bool(await tx.value(NEXT_STILL_LEASED, params))
        # One live lease per worker: the item sent after the answer goes back to the pool.
        leases = {"worker": worker_id, "taskset": view.id}
        await self.expire(tx, DROP_FRESH_LEASES, leases)
        await self.expire(tx, EXPIRE_WORKER_IN_SET, leases)
        token = secrets.token_urlsafe(12)
        await tx.run(REOPEN_LEASE, {**params, "token": token, "expires": now + self.lease})
        return Undone(
            ServedItem(token, view, row.text, row.media_kind, row.media_ref, standing.answers + 1),
            put_back,
        )

    async def set_unsure_reason(self, answer_id: int, worker_id: int, reason: str) -> bool:
        """Store why the worker was not sure, on their own live "not sure" answer; False when
        the id names no such answer (another's, undone, or answered otherwise since)."""
        params = {"answer_id": answer_id, "worker_id": worker_id, "reason": reason[:2000]}
        return bool(await self._driver.transaction(run_statement, SET_UNSURE_REASON, params))

    async def set_aside(self, token: str, reason: str) -> bool:
        """Keep the leased item out of the pool for good, because Telegram refuses to show it,
        and give its lease back; False when the token names no lease."""
        return await self._driver.transaction(self._set_aside, token, reason)

    async def _set_aside(self, tx: Transaction, token: str, reason: str) -> bool:
        if not await tx.run(SET_ASIDE_ITEM, {"token": token, "reason": reason}):
            return False
        await self.expire(tx, EXPIRE_LEASE, {"token": token})
        return True

    async def expire_leases(self) -> int:
        """Give the items of leases that ran out back to the pool; returns how many expired."""
        return await self._driver.transaction(self.expire, EXPIRE_DUE, {"now": self.clock()})

    async def release_leases(self, worker_id: int, taskset_id: int) -> int:
        """Give back the worker's live leases in one set (they moved on to another)."""
        return await self._driver.transaction(
            self.expire, EXPIRE_WORKER_IN_SET, {"worker": worker_id, "taskset": taskset_id}
        )

    async def mark_inactive(self, worker_id: int) -> None:
        """The worker blocked the bot: stop sending, free their lease at once."""
        await self._driver.transaction(self._mark_inactive, worker_id)

    async def _mark_inactive(self, tx: Transaction, worker_id: int) -> None:
        await tx.run(WORKER_INACTIVE, {"worker": worker_id})
        await self.expire(tx, EXPIRE_WORKER, {"worker": worker_id})

    async def expire(self, tx: Transaction, statement: Any, params: dict[str, Any]) -> int:
        """Expire the leases ``statement`` selects and give their slots back."""
        freed = Counter(lease.item_id for lease in await tx.rows(statement, params))
        for item_id, slots in freed.items():
            await tx.run(FREE_SLOTS, {"item": item_id, "freed": slots})
        return sum(freed.values())
