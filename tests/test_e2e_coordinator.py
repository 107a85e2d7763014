"""A coordinator runs a task set from the chat alone: upload, preview, publish or cancel, watch,
pause, export, stats, workers, disputes. The real Application against the fake Bot API (with
document uploads, getFile and file downloads), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser
from handlers import texts
from handlers.services import Services
from storage.models import (
    Dispute,
    DisputeStatus,
    Membership,
    MembershipStatus,
    TaskSet,
    TaskSetStatus,
)
from storage.store import LabelStore
from tests.conftest import Clock, running_bot
from tests.factories import make_spec

COORDINATOR = 900
LABELS = ["cat", "dog", "other"]


def store_of(bot: LabelBotApp) -> LabelStore:
    services: Services = bot.bot_data
    return services.store


@pytest.fixture
async def bot(telegram: FakeTelegram, db_url: str, clock: Clock) -> AsyncIterator[LabelBotApp]:
    """The bot with one coordinator; no rate limiter, a quick broadcast."""
    async with running_bot(
        telegram,
        db_url,
        clock,
        rate_limit=0,
        coordinators=frozenset({COORDINATOR}),
        broadcast_rate=500,
    ) as application:
        yield application


def taskset_json(name: str = "photos", items: int = 4, **extra: Any) -> bytes:
    rows: list[dict[str, Any]] = [{"id": f"p{n}", "text": f"photo {n}"} for n in range(items)]
    rows.append({"id": "g0", "text": "a clear cat", "gold": "cat", "explanation": "Whiskers."})
    return json.dumps(
        {
            "name": name,
            "title": name.title(),
            "question": "What is in the photo?",
            "labels": LABELS,
            "overlap": 2,
            "reward": "0.05",
            "gold_ratio": 0,
            "items": rows,
            **extra,
        }
    ).encode()


async def tasksets_in_db(bot: LabelBotApp) -> list[tuple[str, TaskSetStatus]]:
    async with store_of(bot).sessions() as session:
        return [
            (row.name, row.status)
            for row in await session.execute(select(TaskSet.name, TaskSet.status))
        ]


async def upload(
    coordinator: FakeUser, content: bytes, name: str, caption: str | None = None
) -> Any:
    """Send a file and wait for the bot's verdict: the draft summary or a refusal."""
    before = len(coordinator.messages)
    await coordinator.send_document(content, name, caption=caption)
    return await coordinator.wait_for(
        lambda m: (
            m["message_id"] > (coordinator.messages[before - 1]["message_id"] if before else 0)
            and "Item 1" not in m.get("text", m.get("caption", ""))
        ),
        timeout=20,
    )


async def reply_to(user: FakeUser, text: str) -> Any:
    """Send a message and return the bot's first message after it."""
    last = user.messages[-1]["message_id"] if user.messages else 0
    await user.send_text(text)
    return await user.wait_for(lambda m: m["message_id"] > last)


def summary_data(message: dict[str, Any], text: str) -> str:
    """The callback data of the button with this text."""
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if button["text"] == text:
                return str(button["callback_data"])
    raise LookupError(text)


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        b["text"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row
    ]


async def fetch_file(telegram: FakeTelegram, file_id: str) -> bytes:
    """Download a file the bot sent, as any Bot API client would: getFile, then the file URL."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{telegram.base_url}{telegram.token}/getFile", json={"file_id": file_id}
        ) as answer:
            path = (await answer.json())["result"]["file_path"]
        async with session.get(f"{telegram.base_file_url}{telegram.token}/{path}") as answer:
            return await answer.read()


async def publish(telegram: FakeTelegram, content: bytes, name: str = "photos.json") -> FakeUser:
    coordinator = telegram.user(COORDINATOR, "Cora")
    summary = await upload(coordinator, content, name)
    assert texts.PUBLISH_BUTTON in buttons(summary), summary
    await coordinator.press(texts.PUBLISH_BUTTON, message_id=summary["message_id"])
    await coordinator.wait_for("Published")
    return coordinator


# ------------------------------------------------------------------ upload and publish


async def test_upload_preview_publish_then_a_worker_is_told_and_labels(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    ann = telegram.user(11, "Ann")
    await ann.send_text("/start")  # known to the bot before the set exists
    await ann.wait_for(texts.NO_TASKSETS)
    coordinator = telegram.user(COORDINATOR, "Cora")

    summary = await upload(coordinator, taskset_json(), "photos.json")

    assert "Draft “Photos” (photos)" in summary["text"]
    assert "Items: 4 to label, 1 gold" in summary["text"]
    assert "Labels: cat, dog, other" in summary["text"]
    assert "Estimated cost: 4 × 2 × 0.05 USD = 0.40 USD" in summary["text"]
    assert buttons(summary) == [texts.PUBLISH_BUTTON, texts.CANCEL_BUTTON]
    item = await coordinator.wait_for("Item 1")
    assert item["text"] == "Item 1\n\nphoto 0\n\nWhat is in the photo?"
    assert buttons(item) == [*LABELS, "Skip", "Not sure"]
    assert await tasksets_in_db(bot) == [("photos", TaskSetStatus.DRAFT)]
    # A draft is served to nobody: neither /start nor its deep link.
    for command in ("/start", "/start photos"):
        reply = await reply_to(ann, command)
        assert reply["text"] == texts.NO_TASKSETS
    assert not any(m.get("text", "").startswith("Item") for m in ann.messages)

    await coordinator.press(texts.PUBLISH_BUTTON, message_id=summary["message_id"])

    done = await coordinator.wait_for("Published “Photos”")
    assert "reply_markup" not in done
    told = await ann.wait_for("New task: “Photos”")
    assert "Reward: 0.05 USD per answer" in told["text"]
    await ann.press(texts.START_BUTTON, message_id=told["message_id"])
    first = await ann.wait_for("Item 1")
    await ann.press("cat", message_id=first["message_id"])
    await ann.wait_for("Item 2")
    progress = await coordinator.wait_for("Told workers about “Photos”: 1 of 1 told")
    assert "to go" not in progress["text"]
    assert await tasksets_in_db(bot) == [("photos", TaskSetStatus.ACTIVE)]


async def test_cancel_stores_nothing_and_frees_the_name(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    coordinator = telegram.user(COORDINATOR, "Cora")
    summary = await upload(coordinator, taskset_json(), "photos.json")

    await coordinator.press(texts.CANCEL_BUTTON, message_id=summary["message_id"])

    await coordinator.wait_for(texts.CANCELLED)
    await coordinator.wait_alert()  # the Cancel tap's own answer
    assert await tasksets_in_db(bot) == []
    # Its Publish button is dead now (a replayed tap publishes nothing).
    await coordinator.press_data(summary_data(summary, texts.PUBLISH_BUTTON), summary["message_id"])
    assert (await coordinator.wait_alert())["text"] == texts.DRAFT_GONE
    assert await tasksets_in_db(bot) == []
    again = await upload(coordinator, taskset_json(), "photos.json")
    assert "Draft “Photos”" in again["text"]


async def test_a_csv_takes_its_spec_from_the_caption(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    coordinator = telegram.user(COORDINATOR, "Cora")
    content = b"id,text,gold\nt1,first,\nt2,second,\ng1,third,dog\n"

    summary = await upload(
        coordinator, content, "pets.csv", caption="name=pets labels=cat|dog overlap=3 reward=0.02"
    )

    assert "Items: 2 to label, 1 gold" in summary["text"]
    assert "Estimated cost: 2 × 3 × 0.02 USD = 0.12 USD" in summary["text"]


HUGE = 21 * 1024 * 1024
HOSTILE = [
    pytest.param(
        "photos.xlsx", b"PK\x03\x04 not a task set", None, "is not a task-set file", id="extension"
    ),
    pytest.param("photos.json", bytes(range(256)) * 40, None, "not UTF-8 text", id="binary"),
    pytest.param(
        "pets.csv", b"id,text\nt1,caf\xe9\n", "name=pets labels=a|b", "line 2: not UTF-8", id="utf8"
    ),
    pytest.param(
        "deep.json",
        b'{"name": "deep", "labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        None,
        "invalid JSON",
        id="nested",
    ),
    pytest.param(
        "wide.csv",
        ("id,text," + ",".join(f"c{n}" for n in range(1_000_000)) + "\nt1,x\n").encode(),
        "name=wide labels=a|b",
        "the header has 1,000,002 columns",
        id="million-columns",
    ),
    pytest.param(
        "local.json",
        taskset_json(items=1).replace(b'"text": "photo 0"', b'"image": "file:///etc/passwd"'),
        None,
        "item 'p0' field 'image': 'file:///etc/passwd' is not a Telegram file_id",
        id="file-url",
    ),
    pytest.param(
        "private.json",
        taskset_json(items=1).replace(
            b'"text": "photo 0"', b'"image": "http://169.254.169.254/latest/meta-data"'
        ),
        None,
        "field 'image'",
        id="private-address",
    ),
    pytest.param(
        "pets.csv",
        b"id,text\nt1,x\n",
        "name=pets overlap=lots",
        "'lots' is not a whole number",
        id="caption",
    ),
    pytest.param(
        "dup.json",
        taskset_json(items=2).replace(b'"id": "p1"', b'"id": "p0"'),
        None,
        "duplicate id",
        id="invalid-spec",
    ),
]


@pytest.mark.parametrize(("name", "content", "caption", "expected"), HOSTILE)
async def test_hostile_uploads_get_a_clear_message_and_store_nothing(
    bot: LabelBotApp,
    telegram: FakeTelegram,
    name: str,
    content: bytes,
    caption: str | None,
    expected: str,
) -> None:
    coordinator = telegram.user(COORDINATOR, "Cora")

    reply = await upload(coordinator, content, name, caption)

    assert expected in reply["text"], reply["text"]
    assert "nothing was stored" in reply["text"] or "20 MB" in reply["text"]
    assert len(reply["text"]) < 4096
    assert await tasksets_in_db(bot) == []


async def test_a_file_over_20_mb_is_refused_before_any_download(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    coordinator = telegram.user(COORDINATOR, "Cora")

    reply = await upload(coordinator, b" " * HUGE, "huge.json")

    assert "21.0 MB; bots can download files up to 20 MB" in reply["text"]
    assert not [call for call in telegram.calls if call.method == "getFile"]
    assert await tasksets_in_db(bot) == []


# ---------------------------------------------------------------------------- safety


async def test_nobody_but_a_coordinator_can_do_anything(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    store = store_of(bot)
    draft = await store.load_taskset(make_spec("draft", items=2), status=TaskSetStatus.DRAFT)
    live = await store.load_taskset(make_spec("live", items=4, gold=1, gold_ratio=1.0))
    await store.join(31, "Sam", taskset_id=live)
    served = await store.next_item_for(31)
    outcome = await store.record_answer(served.token, 31, 2)  # type: ignore[union-attr]
    dispute_id = await store.dispute(outcome.gold.answer_id, 31)  # type: ignore[union-attr]
    await store.coordination.suspend(live, 31, "checking")
    mallory = telegram.user(66, "Mallory")
    calls_before = len(telegram.calls)

    await mallory.send_text("/tasksets")
    carrier = await mallory.wait_for(texts.NOT_ALLOWED)
    await mallory.send_text("/suspend 31 live because")
    await mallory.send_document(taskset_json(), "photos.json")
    forged = [
        f"cp:{draft}",
        f"cx:{draft}",
        f"ct:p:{live}",
        f"ct:c:{live}",
        f"ce:{live}",
        f"ce:{live}:c:m",
        f"cs:{live}",
        f"cw:{live}",
        f"cu:{live}:31",
        f"cu:{live}:31:s",
        f"ci:{live}:31",
        f"cd:{live}",
        f"cy:{dispute_id}",
        f"cn:{dispute_id}",
        f"cq:{live}",
    ]
    for data in forged:
        await mallory.press_data(data, carrier["message_id"])
        alert = await mallory.wait_alert()
        assert alert.get("text") == texts.NOT_ALLOWED and alert.get("show_alert"), data

    await mallory.wait_for(lambda _: mallory.texts().count(texts.NOT_ALLOWED) >= 3)
    assert mallory.texts() == [texts.NOT_ALLOWED] * 3
    methods = {call.method for call in telegram.calls[calls_before:]}
    assert not methods & {"getFile", "sendDocument", "sendPhoto", "editMessageText"}
    assert sorted(await tasksets_in_db(bot)) == [
        ("draft", TaskSetStatus.DRAFT),
        ("live", TaskSetStatus.ACTIVE),
    ]
    async with store.sessions() as session:
        assert await session.scalar(select(Dispute.status)) == DisputeStatus.OPEN
        assert await session.scalar(select(Membership.status)) == MembershipStatus.SUSPENDED
