"""A worker's own numbers, boards, settings and data in Telegram: the real Application against
the fake Bot API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser, Upload
from storage.models import Answer, LedgerEntry, Worker, WorkerStatus
from storage.store import LabelStore
from tests.conftest import Clock, running_bot
from tests.factories import make_spec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def app(telegram: FakeTelegram, db_url: str, clock: Clock) -> AsyncIterator[LabelBotApp]:
    async with running_bot(telegram, db_url, clock, http="aiohttp", rate_limit=0) as application:
        yield application


def store_of(app: LabelBotApp) -> LabelStore:
    return app.bot_data.store


async def label(user: FakeUser, count: int, first: int = 1) -> None:
    for number in range(first, first + count):
        item = await user.wait_for(f"Item {number}")
        await user.press("positive", message_id=item["message_id"])
    await user.wait_for(f"Item {first + count}")


def uploads(telegram: FakeTelegram, method: str, field: str) -> list[Upload]:
    return [
        call.params[field]
        for call in telegram.calls
        if call.method.lower() == method.lower() and isinstance(call.params.get(field), Upload)
    ]


async def test_me_sends_a_chart_of_the_last_days_as_a_png_photo(
    app: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(app).load_taskset(make_spec(items=6, overlap=1))
    ann = telegram.user(51, "Ann")
    await ann.send_text("/start")
    await label(ann, 3)
    await ann.send_text("/me")
    summary = await ann.wait_for("📊")
    assert "Answers: 3 today, 3 in total" in summary["text"]
    assert "Level: Newcomer" in summary["text"]
    await ann.press("📈 Last 14 days", message_id=summary["message_id"])
    photo = await ann.wait_for(lambda message: "photo" in message)
    assert "answers per day" in photo["caption"]
    [png] = uploads(telegram, "sendPhoto", "photo")
    assert png.content.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png.content[16:24])  # the IHDR chunk
    assert (width, height) == (800, 400)
    assert 5_000 < len(png.content) < 300_000


async def test_leaderboard_buttons_edit_the_same_message(
    app: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(app).load_taskset(make_spec(items=10, overlap=2))
    ann, bob = telegram.user(52, "Ann"), telegram.user(53, "Bob")
    for user, taps in ((ann, 1), (bob, 2)):
        await user.send_text("/start")
        await label(user, taps)
    await ann.send_text("/leaderboard")
    board = await ann.wait_for("🏆")
    assert board["text"].startswith("🏆 “Sentiment” · All time")
    lines = board["text"].splitlines()
    assert lines[1].startswith("1. Worker ") and "2 answers" in lines[1]
    assert lines[2].startswith("2. you – 1 answers")
    assert "You: #2 of 2, 1 answer behind #1." in board["text"]
    assert "Bob" not in board["text"]
    sent = len(ann.messages)

    await ann.press("Today", message_id=board["message_id"])
    today = await ann.wait_for(lambda m: "· Today" in m.get("text", ""))
    assert today["message_id"] == board["message_id"] and len(ann.messages) == sent
    await ann.press("All tasks", message_id=board["message_id"])
    overall = await ann.wait_for(lambda m: "All tasks · Today" in m.get("text", ""))
    assert overall["message_id"] == board["message_id"]
    # A set without gold ranks everyone; the board of all sets asks for control answers.
    assert "not ranked yet: 3 more control questions" in overall["text"]


async def test_settings_put_the_first_name_on_the_boards_and_switch_messages_off(
    app: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(app).load_taskset(make_spec(items=10, overlap=2))
    ann, bob = telegram.user(54, "Ann"), telegram.user(55, "Bob")
    for user in (ann, bob):
        await user.send_text("/start")
        await label(user, 1)
    await ann.send_text("/settings")
    menu = await ann.wait_for("⚙ Settings")
    assert "a pseudonym, Worker " in menu["text"] and "new tasks: on" in menu["text"]
    await ann.press("🙋 Show my first name", message_id=menu["message_id"])
    await ann.wait_for(lambda m: "your first name, Ann" in m.get("text", ""))
    await bob.send_text("/leaderboard")
    assert "Ann – 1 answers" in (await bob.wait_for("🏆"))["text"]
    await ann.press("🔕 Turn new-task messages off", message_id=menu["message_id"])
    await ann.wait_for(lambda m: "new tasks: off" in m.get("text", ""))
    async with store_of(app).sessions() as session:
        assert await session.scalar(select(Worker.notify).where(Worker.id == 54)) is False


async def test_mydata_sends_everything_and_delete_erases_the_person_but_keeps_the_work(
    app: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    store = store_of(app)
    await store.load_taskset(make_spec(items=10, overlap=1, reward="0.05"))
    ann = telegram.user(56, "Ann", username="ann_real")
    await ann.send_text("/start")
    await label(ann, 2)

    await ann.send_text("/mydata")
    await ann.wait_for(lambda message: "document" in message)
    [document] = uploads(telegram, "sendDocument", "document")
    data: dict[str, Any] = json.loads(document.content)
    assert data["profile"]["username"] == "ann_real" and data["profile"]["telegram_id"] == 56
    assert [a["label"] for a in data["answers"]] == ["positive", "positive"]
    assert [(e["kind"], e["amount"]) for e in data["ledger"]] == [("reward", "0.05")] * 2
    assert data["memberships"][0]["taskset"] == "sentiment"

    await ann.send_text("/delete")
    confirm = await ann.wait_for("Delete your data?")
    assert "unpaid earnings (0.10 USD)" in confirm["text"]
    await ann.press("Keep it", message_id=confirm["message_id"])
    await ann.wait_for(lambda m: m.get("text") == "Nothing was erased.")
    await ann.send_text("/delete")
    confirm = await ann.wait_for(
        lambda m: "Delete your data?" in m.get("text", "") and "reply_markup" in m
    )
    await ann.press("🗑 Delete my data", message_id=confirm["message_id"])
    done = await ann.wait_for("personal data is erased")
    assert "2 answers" in done["text"] and "2 ledger entries" in done["text"]

    async with store.sessions() as session:
        assert await session.get(Worker, 56) is None
        assert await session.scalar(select(Worker).where(Worker.username == "ann_real")) is None
        [stand_in] = list(await session.scalars(select(Worker).where(Worker.id < 0)))
        assert stand_in.status == WorkerStatus.DELETED and stand_in.language is None
        kept = select(func.count()).where(Answer.worker_id == stand_in.id)
        assert await session.scalar(kept) == 2
        entries = select(func.count()).where(LedgerEntry.worker_id == stand_in.id)
        assert await session.scalar(entries) == 2
    violations = await store.consistency_violations()
    assert violations == dict.fromkeys(violations, 0)

    # Coming back starts afresh.
    await ann.send_text("/start")
    await ann.wait_for(
        lambda m: m.get("text", "").startswith("Hi Ann!") and m["message_id"] > done["message_id"]
    )
    await ann.send_text("/earnings")
    await ann.wait_for(lambda m: "No earnings yet" in m.get("text", ""))


async def test_an_old_delete_button_erases_nothing(
    app: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    await store_of(app).load_taskset(make_spec(items=3, overlap=1))
    ann = telegram.user(57, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Item 1")
    await ann.send_text("/delete")
    confirm = await ann.wait_for("Delete your data?")
    clock.advance(minutes=11)
    await ann.press("🗑 Delete my data", message_id=confirm["message_id"])
    await ann.wait_for("more than 10 minutes old")
    async with store_of(app).sessions() as session:
        assert await session.get(Worker, 57) is not None
