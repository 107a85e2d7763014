"""The broadcaster: one task per process that tells workers about a published task set.

It works through the broadcast queue in the database (storage/broadcasts.py), so it survives a
restart and tells nobody twice, and several processes never run one broadcast at once. It stays
within Telegram's limits and never delays the answer loop:

- It paces itself at ``rate`` messages a second (``LABELBOT_BROADCAST_RATE``, 20 by default),
  below PTB's ``AIORateLimiter`` (``LABELBOT_RATE_LIMIT``, 30 a second for the whole bot),
  which every call shares: the limiter's remaining budget is left to the taps, which never
  queue behind a broadcast of 500.
- One message per recipient, and the coordinator's progress message is edited at most every
  ``progress_seconds`` (and never twice in one second): no chat gets more than one a second.
- A 429 is honoured: the limiter retries after ``retry_after`` (holding every call, as
  Telegram asks), and should a 429 still come through, the broadcaster waits ``retry_after``
  itself and sends to the same recipient again (a 429 means nothing was delivered).
- A 403 marks the worker inactive (they blocked the bot). A timeout is recorded as unknown and
  not retried: the message may have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import timedelta

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from handlers import texts
from handlers.callbacks import encode_join
from handlers.labeling_bot import InlineKeyboard, LabelingBot
from storage.broadcasts import BroadcastJob, Delivery
from storage.models import DeliveryState
from storage.results import TaskSetView
from storage.store import LabelStore

log = logging.getLogger(__name__)

DEFAULT_RATE = 20.0
PROGRESS_SECONDS = 2.0
# Telegram allows about one message a second in one chat; progress edits keep to that.
CHAT_GAP_SECONDS = 1.0
MAX_ATTEMPTS = 5
NETWORK_RETRY_SECONDS = 1.0
# Without a wake-up, look for broadcasts left by a process that died this often.
IDLE_SECONDS = 60.0
STOP_SECONDS = 10.0


def seconds(retry_after: int | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)


class Broadcaster:
    """Started in ``post_init``, stopped in ``post_shutdown``; ``wake`` after a Publish."""

    def __init__(
        self,
        bot: LabelingBot,
        store: LabelStore,
        *,
        rate: float = DEFAULT_RATE,
        progress_seconds: float = PROGRESS_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.bot = bot
        self.store = store
        self.runner = secrets.token_hex(8)
        self.interval = 1.0 / rate
        self.progress_seconds = max(progress_seconds, CHAT_GAP_SECONDS)
        self.idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._next_send = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="labelbot-broadcaster")

    def wake(self) -> None:
        """A broadcast was queued: start on it now rather than at the next idle check."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the send in progress, record it, give the broadcast back and end."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            try:
                for broadcast_id in await self.store.broadcasts.unfinished():
                    if self._stopping:
                        break
                    job = await self.store.broadcasts.take(broadcast_id, self.runner)
                    if job is not None:
                        await self._deliver(job, loop)
            except Exception:  # the database or Telegram is away: try again later
                log.exception("broadcast interrupted; it resumes at the next attempt")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_seconds)

    async def _deliver(self, job: BroadcastJob, loop: asyncio.AbstractEventLoop) -> None:
        queue = self.store.broadcasts
        view = await self.store.view(job.taskset_id)
        progress = job.progress_message_id
        if progress is None:
            progress = await self._post_progress(job, view)
        edited = loop.time()
        outcome: Delivery | None = None
        while True:
            claim = await queue.advance(job.id, self.runner, outcome, claim_next=not self._stopping)
            if claim.lost:
                log.warning("broadcast %d was taken over by another process", job.id)
                return
            if claim.worker_id is None:
                break
            outcome = await self._send(claim.worker_id, view)
            if progress is not None and loop.time() - edited >= self.progress_seconds:
                await self._edit_progress(job, view, progress)
                edited = loop.time()
        if self._stopping:
            await queue.release(job.id, self.runner)
            return
        if await queue.finish(job.id, self.runner) and progress is not None:
            await asyncio.sleep(max(0.0, edited + CHAT_GAP_SECONDS - loop.time()))
            await self._edit_progress(job, view, progress)
        log.info("broadcast %d about %s is done", job.id, view.name)

    async def _send(self, worker_id: int, view: TaskSetView) -> Delivery:
        keyboard: InlineKeyboard = {
            "inline_keyboard": [
                [{"text": texts.START_BUTTON, "callback_data": encode_join(view.id)}]
            ]
        }
        text = texts.new_taskset(view)
        for _attempt in range(MAX_ATTEMPTS):
            await self._pace()
            try:
                await self.bot.send_text(worker_id, text, keyboard)
                return Delivery(worker_id, DeliveryState.SENT)
            except RetryAfter as error:  # nothing was delivered: wait as told, then again
                wait = seconds(error.retry_after)
                log.info("broadcast: Telegram asks to wait %.1f s", wait)
                self._next_send = asyncio.get_running_loop().time() + wait
            except Forbidden:
                await self.store.mark_inactive(worker_id)
                return Delivery(worker_id, DeliveryState.BLOCKED, "blocked the bot")
            except BadRequest as error:
                return Delivery(worker_id, DeliveryState.FAILED, error.message)
            except TimedOut:  # it may have arrived: never send it twice
                return Delivery(worker_id, DeliveryState.UNKNOWN, "timed out")
            except NetworkError as error:
                log.info("broadcast: %s; trying again", error)
                await asyncio.sleep(NETWORK_RETRY_SECONDS)
            except TelegramError as error:
                return Delivery(worker_id, DeliveryState.FAILED, str(error))
        return Delivery(worker_id, DeliveryState.FAILED, "Telegram kept refusing")

    async def _pace(self) -> None:
        """Wait for this send's slot: at most one every ``interval`` seconds, no catching up."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)
            now = loop.time()
        self._next_send = max(now, self._next_send) + self.interval

    async def _post_progress(self, job: BroadcastJob, view: TaskSetView) -> int | None:
        progress = await self.store.broadcasts.progress(job.id)
        try:
            message = await self.bot.send_message(
                job.chat_id, texts.broadcast_progress(view.title, progress)
            )
        except TelegramError as error:
            log.warning("broadcast %d: cannot show its progress: %s", job.id, error)
            return None
        await self.store.broadcasts.set_progress_message(job.id, message.message_id)
        return message.message_id

    async def _edit_progress(self, job: BroadcastJob, view: TaskSetView, message_id: int) -> None:
        progress = await self.store.broadcasts.progress(job.id)
        try:
            await self.bot.edit_message_text(
                texts.broadcast_progress(view.title, progress), job.chat_id, message_id
            )
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                log.warning("broadcast %d: cannot update its progress: %s", job.id, error)
        except TelegramError as error:
            log.warning("broadcast %d: cannot update its progress: %s", job.id, error)
