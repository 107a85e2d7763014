"""One user must not slow everyone down: a per-user token bucket in front of every handler.

A person tapping through items manages one or two taps a second; a script can send sixty
updates. Each user has a bucket of ``BURST`` tokens that refills at ``rate`` tokens a second
(``LABELBOT_FLOOD_RATE``, 3 by default: half as much again as the fastest honest labeling). An
update that finds no token is dropped in a handler group that runs before all others, so it
never reaches the database. A dropped tap on a button always gets its callback answered (the
phone stops spinning) with a "slow down" alert; nothing was stored, so the item keeps its buttons
and the next tap counts. Other dropped updates go unanswered, except that the first of them in
``NOTICE_SECONDS`` gets one "slow down" message, which says that nothing in them was saved: a
typed or voice answer dropped in a flood is never dropped silently (dropped taps, told by their
alerts, do not use up that notice), and the item keeps waiting for it.

The buckets live in the process: with several processes each keeps its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, auto

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, TypeHandler

from handlers import texts
from handlers.services import Context, LabelBotApp

log = logging.getLogger(__name__)

# Enough for a re-tap on a slow phone or a command followed by quick taps.
BURST = 5
NOTICE_SECONDS = 10.0
# Handler groups run in ascending order and the default one is 0: this one runs first.
GROUP = -1


class Verdict(Enum):
    """What to do with one update."""

    PASS = auto()
    DROP = auto()
    DROP_AND_TELL = auto()  # the first drop in NOTICE_SECONDS: say "slow down" this time


@dataclass(slots=True)
class _Bucket:
    tokens: float
    seen: float  # when the user's latest update came
    told: float  # when the user was last told to slow down


class FloodLimiter:
    """A token bucket per user id, on an injectable clock (seconds as a float).

    A dropped update takes a token too (down to zero), so a user stays dropped for as long as
    they keep sending faster than ``rate``: a script sending 60 updates a second gets its first
    burst through and then nothing, rather than ``rate`` updates a second of database work.

    Memory holds only users seen in the last ``idle_seconds``. By then a user's bucket is full
    again and a notice would be due, so forgetting them changes no later verdict.
    """

    def __init__(
        self,
        rate: float,
        burst: int = BURST,
        *,
        notice_seconds: float = NOTICE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a flood limit needs rate > 0 and burst >= 1, not {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.notice_seconds = notice_seconds
        self.idle_seconds = max(burst / rate, notice_seconds)
        self._clock = clock
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()  # least recently seen first

    def __len__(self) -> int:
        """How many users the limiter remembers."""
        return len(self._buckets)

    def hit(self, user_id: int, *, notice: bool = True) -> Verdict:
        """Count one update of ``user_id`` and say whether it may pass. A dropped update with
        ``notice`` False (a tap, which its alert answers) never takes the notice."""
        now = self._clock()
        self._forget_idle(now)
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(self.burst, now, -math.inf)
        else:
            # max(0, ...): a clock that steps back refills nothing (and takes nothing either).
            refill = max(0.0, now - bucket.seen) * self.rate
            bucket.tokens = min(self.burst, bucket.tokens + refill)
            bucket.seen = now
            self._buckets.move_to_end(user_id)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return Verdict.PASS
        bucket.tokens = 0.0
        if not notice or now - bucket.told < self.notice_seconds:
            return Verdict.DROP
        bucket.told = now
        return Verdict.DROP_AND_TELL

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.seen < self.idle_seconds:
                return
            self._buckets.popitem(last=False)


class FloodGuard:
    """The limiter as the first handler: a dropped update goes no further."""

    def __init__(self, limiter: FloodLimiter) -> None:
        self.limiter = limiter

    async def check(self, update: Update, context: Context) -> None:
        user = update.effective_user
        # Coordinators are trusted, and their uploads come several files at once.
        if user is None or user.id in context.bot_data.coordinators:
            return
        verdict = self.limiter.hit(user.id, notice=update.callback_query is None)
        if verdict is Verdict.PASS:
            return
        chat = update.effective_chat
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(texts.SLOW_DOWN_ALERT, show_alert=True)
            # In a group the notice would go to everyone; the bot only works in private chats.
            elif verdict is Verdict.DROP_AND_TELL and chat and chat.type == ChatType.PRIVATE:
                await context.bot.send_message(chat.id, texts.SLOW_DOWN)
        except TelegramError as error:  # telling them is best effort; the update is dropped anyway
            log.info("user %s: could not say slow down: %s", user.id, error)
        if verdict is Verdict.DROP_AND_TELL:
            log.info(
                "user %s sends over %g updates/s; dropping the surplus", user.id, self.limiter.rate
            )
        raise ApplicationHandlerStop


def register(application: LabelBotApp, rate: float, clock: Callable[[], datetime]) -> None:
    """Put the guard in front of every handler group; ``rate`` 0 leaves it out. It reads the
    application's clock, which tests drive by hand as they do for leases."""
    if rate == 0:
        return
    limiter = FloodLimiter(rate, clock=lambda: clock().timestamp())
    application.add_handler(TypeHandler(Update, FloodGuard(limiter).check), group=GROUP)
