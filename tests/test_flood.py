"""One user's flood is dropped before any database work, with one "slow down"; others go on.

The limiter on a hand-driven clock, then the real Application on the fake Bot API, whose
``clock`` fixture the guard reads too: with ``clock.step`` at zero a flood arrives in one instant.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

import pytest

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser, JSONDict
from handlers import texts
from handlers.flood import BURST, FloodLimiter, Verdict
from tests.conftest import Clock, running_bot
from tests.factories import LABELS, make_spec
from tests.test_e2e_worker import answers_in_db, newer_than, settled, store_of

RATE = 3.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter_on(clock: FakeClock) -> FloodLimiter:
    return FloodLimiter(RATE, BURST, notice_seconds=10.0, clock=clock)


def send_at(
    limiter: FloodLimiter, clock: FakeClock, user_id: int, per_second: float, seconds: float
) -> list[Verdict]:
    """``user_id`` sends evenly ``per_second`` updates for ``seconds``; the verdicts in order."""
    start = clock.now
    verdicts = []
    for n in range(round(per_second * seconds)):
        clock.now = start + n / per_second
        verdicts.append(limiter.hit(user_id))
    return verdicts


# -- the limiter ----------------------------------------------------------------------------


def test_a_burst_passes_then_the_surplus_is_dropped_and_told_once() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)

    verdicts = [limiter.hit(1) for _ in range(BURST + 10)]

    assert verdicts[:BURST] == [Verdict.PASS] * BURST
    assert verdicts[BURST:] == [Verdict.DROP_AND_TELL] + [Verdict.DROP] * 9


def test_dropped_taps_leave_the_notice_for_the_first_dropped_message() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)
    [limiter.hit(1) for _ in range(BURST)]

    taps = [limiter.hit(1, notice=False) for _ in range(5)]

    assert taps == [Verdict.DROP] * 5
    assert [limiter.hit(1), limiter.hit(1)] == [Verdict.DROP_AND_TELL, Verdict.DROP]


def test_honest_labeling_at_two_taps_a_second_is_never_dropped() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)
    # /start, then an impatient re-tap on the first item: a small burst first.
    assert {limiter.hit(1) for _ in range(3)} == {Verdict.PASS}

    assert set(send_at(limiter, clock, 1, per_second=2, seconds=600)) == {Verdict.PASS}


def test_a_sustained_flood_gets_its_first_burst_through_and_one_notice_per_ten_seconds() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)

    verdicts = send_at(limiter, clock, 1, per_second=60, seconds=30)

    # Dropped updates take tokens too: nothing after the burst, not RATE a second.
    assert verdicts.count(Verdict.PASS) == BURST
    assert verdicts.count(Verdict.DROP_AND_TELL) == 3


def test_a_moment_of_calm_after_a_flood_lets_the_user_in_again() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)
    send_at(limiter, clock, 1, per_second=60, seconds=5)

    clock.now += 1 / RATE
    assert limiter.hit(1) == Verdict.PASS
    assert limiter.hit(1) == Verdict.DROP  # one token back, and told a moment ago


def test_one_users_flood_does_not_touch_another_users_bucket() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)
    send_at(limiter, clock, 1, per_second=60, seconds=5)

    assert [limiter.hit(2) for _ in range(BURST)] == [Verdict.PASS] * BURST


def test_idle_users_are_forgotten_and_come_back_as_new() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)
    for user_id in range(1000):
        limiter.hit(user_id)
    flooded = send_at(limiter, clock, 1000, per_second=60, seconds=1)
    assert len(limiter) == 1001

    clock.now += limiter.idle_seconds
    back = [limiter.hit(1000) for _ in range(BURST + 1)]

    assert len(limiter) == 1
    # Forgetting changes nothing: a full bucket and a notice due, as if it had been kept.
    assert back == flooded[: BURST + 1] == [Verdict.PASS] * BURST + [Verdict.DROP_AND_TELL]


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = FakeClock()
    limiter = limiter_on(clock)
    send_at(limiter, clock, 1, per_second=60, seconds=1)

    clock.now -= 3600
    assert limiter.hit(1) == Verdict.DROP
    clock.now += 1 / RATE
    assert limiter.hit(1) == Verdict.PASS


# -- the bot ----------------------------------------------------------------------------------


async def start(user: FakeUser) -> JSONDict:
    await user.send_text("/start")
    return await user.wait_for("Item 1")


def help_replies(user: FakeUser) -> int:
    return user.texts().count(texts.HELP)


def shown(user: FakeUser, message_id: int) -> JSONDict:
    return next(message for message in user.messages if message["message_id"] == message_id)


def alert_texts(user: FakeUser) -> list[str]:
    return [alert.get("text", "") for alert in user.alerts]


async def label(user: FakeUser, item: JSONDict, taps: int) -> None:
    for _ in range(taps):
        await user.press(LABELS[0], message_id=item["message_id"])
        item = await user.wait_for(newer_than(item["message_id"]))


async def test_a_flood_is_dropped_before_the_database_while_another_worker_labels_on(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    await store_of(bot).load_taskset(make_spec(items=20, overlap=1))
    flooder, worker = telegram.user(61, "Flo"), telegram.user(62, "Wes")
    flooder_item, worker_item = await start(flooder), await start(worker)
    await settled(bot, telegram)
    clock.advance(minutes=1)
    clock.step = timedelta(0)  # from here on, everything happens in one instant

    for _ in range(BURST + 5):
        await flooder.send_text("/help")
    for _ in range(20):  # well-formed buttons naming no lease: each would cost a lookup
        await flooder.press_data(f"a:{secrets.token_urlsafe(12)}:0", flooder_item["message_id"])
    for n in range(20):
        await flooder.send_text(f"hello {n}")
    await label(worker, worker_item, taps=4)  # while the bot works through the flood
    await settled(bot, telegram)

    assert help_replies(flooder) == BURST
    assert flooder.texts().count(texts.SLOW_DOWN) == 1
    # Every button press was answered, and with "slow down": none was looked up.
    assert alert_texts(flooder) == [texts.SLOW_DOWN_ALERT] * 20
    assert await answers_in_db(bot) == 4
    assert worker.texts()[-1].startswith("Item 5")
    assert texts.SLOW_DOWN_ALERT not in alert_texts(worker)


async def test_a_flooded_tap_on_a_live_item_is_answered_and_counts_when_tapped_again(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    await store_of(bot).load_taskset(make_spec(items=5, overlap=1))
    ann = telegram.user(63, "Ann")
    item = await start(ann)
    await settled(bot, telegram)
    clock.advance(minutes=1)
    clock.step = timedelta(0)
    for _ in range(BURST):
        await ann.send_text("/help")

    await ann.press(LABELS[1], message_id=item["message_id"])
    assert (await ann.wait_alert())["text"] == texts.SLOW_DOWN_ALERT
    await settled(bot, telegram)
    assert await answers_in_db(bot) == 0
    assert "reply_markup" in shown(ann, item["message_id"])  # the item keeps its buttons

    clock.advance(seconds=1)  # a moment's pause
    await ann.press(LABELS[1], message_id=item["message_id"])
    await ann.wait_for("Item 2")
    assert await answers_in_db(bot) == 1


@pytest.mark.parametrize(
    "settings", [{"flood_rate": 0}, {"coordinators": frozenset({64})}], ids=["off", "coordinator"]
)
async def test_nobody_is_limited_with_the_guard_off_and_coordinators_never(
    telegram: FakeTelegram, db_url: str, clock: Clock, settings: dict[str, Any]
) -> None:
    clock.step = timedelta(0)
    async with running_bot(telegram, db_url, clock, rate_limit=0, **settings) as bot:
        user = telegram.user(64, "Cora")
        for _ in range(BURST * 3):
            await user.send_text("/help")
        await settled(bot, telegram)

    assert help_replies(user) == BURST * 3
    assert texts.SLOW_DOWN not in user.texts()


async def test_a_flood_in_a_group_gets_no_notice_there(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    clock.step = timedelta(0)
    member = telegram.user(65, "Gil")
    group = {"id": -1001, "type": "group", "title": "Crowd"}
    for message_id in range(1, BURST * 3 + 1):
        telegram.push_update(
            {
                "message": {
                    "message_id": message_id,
                    "from": member.sender,
                    "chat": group,
                    "date": int(time.time()),
                    "text": "/help",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                }
            }
        )
    await settled(bot, telegram)

    assert not [call for call in telegram.calls if call.params.get("chat_id") == group["id"]]
