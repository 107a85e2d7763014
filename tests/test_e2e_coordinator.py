"""A coordinator runs a task set from the chat alone: upload, preview, publish or cancel, watch,
pause, export, stats, workers, disputes. The real Application against the fake Bot API (with
document uploads, getFile and file downloads), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import LabelBotApp
from bot.cli import main as cli
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
from storage.results import NoItem, Recorded
from storage.store import LabelStore
from tests.conftest import Clock, running_bot
from tests.factories import make_spec

COORDINATOR = 900
CARD = re.compile(r"^“[^”]*” \(([\w-]+)\) – ")
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
        "cv",
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


# ----------------------------------------------------------------------- /tasksets


async def show_cards(coordinator: FakeUser, expected: int) -> dict[str, Any]:
    """Send /tasksets; the ``expected`` cards it answers with, by task-set name."""
    last = coordinator.messages[-1]["message_id"] if coordinator.messages else 0
    await coordinator.send_text("/tasksets")

    def fresh() -> dict[str, dict[str, Any]]:
        named = [(CARD.match(m.get("text", "")), m) for m in coordinator.messages]
        return {match[1]: m for match, m in named if match and m["message_id"] > last}

    await coordinator.wait_for(lambda _: len(fresh()) >= expected)
    return fresh()


async def tap_and_wait(user: FakeUser, button: str, message: dict[str, Any]) -> dict[str, Any]:
    """Press a button and return the message as the tap's edit left it."""
    await user.press(button, message_id=message["message_id"])
    return await user.wait_for(lambda m: m["message_id"] == message["message_id"] and m != message)


async def test_tasksets_pause_resume_close_and_a_cli_draft_published_in_chat(
    bot: LabelBotApp, telegram: FakeTelegram, db_url: str, tmp_path: Path
) -> None:
    await store_of(bot).load_taskset(make_spec("live", items=3, overlap=1))
    path = tmp_path / "later.json"
    path.write_bytes(taskset_json("later"))
    assert (
        await asyncio.to_thread(cli, ["--database-url", db_url, "load", str(path), "--draft"]) == 0
    )
    wendy = telegram.user(21, "Wendy")
    await wendy.send_text("/start")
    leased = await wendy.wait_for("Item 1")
    coordinator = telegram.user(COORDINATOR, "Cora")

    found = await show_cards(coordinator, 2)

    live, later = found["live"], found["later"]
    assert "“Live” (live) – active" in live["text"]
    assert "░░░░░░░░░░ 0%  0/3 items" in live["text"]
    assert buttons(live) == [
        texts.PAUSE_BUTTON,
        texts.CLOSE_BUTTON,
        texts.EXPORT_BUTTON,
        texts.STATS_BUTTON,
        texts.WORKERS_BUTTON,
        texts.DISPUTES_BUTTON,
        texts.UNSURE_LIST_BUTTON,
    ]
    assert "– draft" in later["text"] and buttons(later) == [
        texts.PUBLISH_BUTTON,
        texts.CANCEL_BUTTON,
    ]

    paused = await tap_and_wait(coordinator, texts.PAUSE_BUTTON, live)
    assert "– paused" in paused["text"] and texts.RESUME_BUTTON in buttons(paused)
    # The worker holding a lease is told on the next tap, and the answer is kept.
    await wendy.press("positive", message_id=leased["message_id"])
    await wendy.wait_for("is paused right now")
    await wendy.wait_for("Your answer: positive")  # the answered item, edited after that
    assert "Your answer: positive" in wendy.message(leased["message_id"])["text"]
    assert (await store_of(bot).coordination.overview())[0].answers == 1
    resumed = await tap_and_wait(coordinator, texts.RESUME_BUTTON, paused)
    assert "– active" in resumed["text"] and "1/3 items" in resumed["text"]
    await wendy.send_text("/next")
    await wendy.wait_for("Item 2")
    closed = await tap_and_wait(coordinator, texts.CLOSE_BUTTON, resumed)
    assert "– closed" in closed["text"] and buttons(closed)[0] == texts.RESUME_BUTTON

    await coordinator.press(texts.PUBLISH_BUTTON, message_id=later["message_id"])
    await coordinator.wait_for("Published “Later”")
    assert sorted(await tasksets_in_db(bot)) == [
        ("later", TaskSetStatus.ACTIVE),
        ("live", TaskSetStatus.CLOSED),
    ]


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1,1)"]


async def label_with_store(bot: LabelBotApp, taskset_id: int, choices: dict[int, int]) -> None:
    """Workers (id -> label index) label the set through the storage calls the bot uses."""
    store = store_of(bot)
    for worker_id, choice in choices.items():
        await store.join(worker_id, f"W{worker_id}", taskset_id=taskset_id)
        result = await store.next_item_for(worker_id)
        while not isinstance(result, NoItem):
            outcome = await store.record_answer(result.token, worker_id, choice)
            assert isinstance(outcome, Recorded)
            result = outcome.next


async def test_export_documents_equal_labelbot_export_and_neutralise_formulas(
    bot: LabelBotApp, telegram: FakeTelegram, db_url: str, tmp_path: Path
) -> None:
    rows = "".join(
        f't{n},"{text.replace(chr(34), chr(34) * 2)}"\n' for n, text in enumerate(FORMULAS)
    )
    coordinator = telegram.user(COORDINATOR, "Cora")
    summary = await upload(
        coordinator,
        f"id,text\n{rows}".encode(),
        "formulas.csv",
        caption="name=formulas labels=cat|dog overlap=2",
    )
    await coordinator.press(texts.PUBLISH_BUTTON, message_id=summary["message_id"])
    await coordinator.wait_for("Published")
    taskset_id = await store_of(bot).taskset_id("formulas")
    assert taskset_id is not None
    await label_with_store(bot, taskset_id, {61: 0, 62: 1, 63: 0})
    card = (await show_cards(coordinator, 1))["formulas"]

    for menu_button, fmt, method in [
        ("majority vote · CSV", "csv", "mv"),
        ("Dawid-Skene · JSONL", "jsonl", "ds"),
        ("raw answers · CSV", "csv", None),
    ]:
        await coordinator.press(texts.EXPORT_BUTTON, message_id=card["message_id"])
        menu = await coordinator.wait_for("Export “formulas”")
        last = coordinator.messages[-1]["message_id"]
        await coordinator.press(menu_button, message_id=menu["message_id"])
        sent = await coordinator.wait_for(
            lambda m, last=last: m["message_id"] > last and "document" in m
        )
        content = await fetch_file(telegram, sent["document"]["file_id"])
        out = tmp_path / f"cli-{fmt}-{method}"
        args = ["--database-url", db_url, "export", "formulas", "--format", fmt, "--out", str(out)]
        args += ["--method", method] if method else ["--raw"]
        assert await asyncio.to_thread(cli, args) == 0
        assert content == out.read_bytes(), menu_button
        assert sent["document"]["file_name"].endswith(f".{fmt}")

    csv_bytes = (tmp_path / "cli-csv-mv").read_bytes()
    assert csv_bytes.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig"), newline="")))
    texts_out = {row["item_id"]: row["text"] for row in table}
    for number, payload in enumerate(FORMULAS):
        assert texts_out[f"t{number}"] == "'" + payload
    assert {row["answers"] for row in table if row["item_id"].startswith("t")} == {"2"}


async def test_stats_give_agreement_distribution_labels_and_a_chart(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    store = store_of(bot)
    taskset_id = await store.load_taskset(
        make_spec("live", items=4, overlap=2, gold=2, gold_ratio=0.5)
    )
    await label_with_store(bot, taskset_id, {73: "unsure", 71: 0, 72: 0})  # type: ignore[dict-item]
    coordinator = telegram.user(COORDINATOR, "Cora")
    card = (await show_cards(coordinator, 1))["live"]

    await coordinator.press(texts.STATS_BUTTON, message_id=card["message_id"])

    report = await coordinator.wait_for("📊")
    assert "Agreement (Krippendorff's alpha):" in report["text"]
    assert "Items: 4/4 done, 0 still open" in report["text"]
    assert "Labels: positive" in report["text"] and "Disputes waiting: 0" in report["text"]
    assert "Gold accuracy of 2 workers" in report["text"]
    chart = await coordinator.wait_for(lambda m: "photo" in m)
    png = await fetch_file(telegram, chart["photo"][-1]["file_id"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    await coordinator.press(texts.UNSURE_LIST_BUTTON, message_id=card["message_id"])
    unsure = await coordinator.wait_for("were not sure about")
    assert "t0 (1×): text number 0" in unsure["text"]


# ------------------------------------------------------------------ workers, disputes


async def test_suspend_with_a_reason_the_worker_reads_then_reinstate(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    await store_of(bot).load_taskset(make_spec("live", items=6, overlap=1))
    wendy = telegram.user(41, "Wendy")
    await wendy.send_text("/start")
    item = await wendy.wait_for("Item 1")
    await wendy.press("positive", message_id=item["message_id"])
    await wendy.wait_for("Item 2")
    coordinator = telegram.user(COORDINATOR, "Cora")
    card = (await show_cards(coordinator, 1))["live"]

    await coordinator.press(texts.WORKERS_BUTTON, message_id=card["message_id"])
    report = await coordinator.wait_for("👥 “Live”: 1 workers")
    assert "41 Wendy: 80% (0/0 gold), 1 answers, median" in report["text"]
    await coordinator.press("⛔ 41 Wendy", message_id=report["message_id"])
    menu = await coordinator.wait_for("Suspend worker 41 in “Live”?")
    confirmation = await tap_and_wait(coordinator, texts.SUSPEND_REASONS["s"], menu)

    assert "⛔ Worker 41 is suspended in “Live” (random or spam answers)" in confirmation["text"]
    told = await wendy.wait_for("is paused: random or spam answers")
    assert "“Live”" in told["text"]
    await wendy.send_text("/next")
    await wendy.wait_for(lambda m: m["message_id"] > told["message_id"] and "paused" in m["text"])

    await coordinator.press(texts.WORKERS_BUTTON, message_id=card["message_id"])
    report = await coordinator.wait_for(lambda m: "Suspended:" in m.get("text", ""))
    assert "41 Wendy: random or spam answers" in report["text"]
    await coordinator.press("✅ 41 Wendy", message_id=report["message_id"])
    await coordinator.wait_for("✅ Worker 41 is reinstated in “Live”")
    back = await wendy.wait_for("you can label “Live” again")
    await wendy.press(texts.START_BUTTON, message_id=back["message_id"])
    await wendy.wait_for(
        lambda m: m["message_id"] > back["message_id"] and "Item 2" in m.get("text", "")
    )

    await coordinator.send_text("/suspend 41 live you skipped the guidelines")
    await coordinator.wait_for("⛔ Worker 41 is suspended in “Live” (you skipped the guidelines)")
    await wendy.wait_for("is paused: you skipped the guidelines")


async def test_an_accepted_dispute_recounts_scores_and_reinstates_the_worker(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    quality = {"min_gold_answers": 3, "min_gold_accuracy": 0.6, "min_median_seconds": 0}
    spec = make_spec("live", items=2, gold=3, gold_ratio=1.0, quality=quality)
    await store_of(bot).load_taskset(spec)
    gold = {str(item.text): str(item.gold) for item in spec.items if item.gold}
    # Dan says "neutral" to every control: 0 of 3, suspended. Rita gets them all right.
    dan, rita = telegram.user(51, "Dan"), telegram.user(52, "Rita")
    feedback: dict[str, dict[str, Any]] = {}
    for user, choose in ((dan, lambda text: "neutral"), (rita, lambda text: gold[text])):
        await user.send_text("/start")
        for number in range(1, 4):
            item = await user.wait_for(f"Item {number}\n")
            text = item["text"].split("\n\n")[1]
            await user.press(choose(text), message_id=item["message_id"])
            feedback[f"{user.id}:{text}"] = await user.wait_for(
                lambda m, after=item["message_id"]: (
                    m["message_id"] > after and "Dispute" in buttons(m)
                )
            )
    await dan.wait_for("Your work on “Live” is paused")
    disputed = feedback["51:control 0"]
    await dan.press(texts.DISPUTE_BUTTON, message_id=disputed["message_id"])
    prompt = await dan.wait_for("Dispute #")
    await dan.send_text("It is clearly neutral", reply_to=prompt)
    await dan.wait_for(lambda m: m["message_id"] > prompt["message_id"])
    # Rita disputes a control she got right; that one will be rejected.
    await rita.press(texts.DISPUTE_BUTTON, message_id=feedback["52:control 1"]["message_id"])
    await rita.wait_for("Dispute #")
    coordinator = telegram.user(COORDINATOR, "Cora")
    card = (await show_cards(coordinator, 1))["live"]

    await coordinator.press(texts.DISPUTES_BUTTON, message_id=card["message_id"])
    case = await coordinator.wait_for("⚖ Dispute in “Live” (2 waiting)")
    assert "Item g0: control 0" in case["text"] and "Gold label: positive" in case["text"]
    assert "answered: neutral" in case["text"] and "It is clearly neutral" in case["text"]
    decided = await tap_and_wait(coordinator, texts.ACCEPT_BUTTON, case)

    assert "Accepted: the gold label is now “neutral”" in decided["text"]
    assert (
        "Gold scores recounted for 2 workers" in decided["text"]
        and "Reinstated: 51" in decided["text"]
    )
    await dan.wait_for("was accepted: for “control 0” the expected answer is now “neutral”")
    second = await coordinator.wait_for("⚖ Dispute in “Live” (1 waiting)")
    assert "Worker 52 (Rita) answered: negative" in second["text"]
    rejected = await tap_and_wait(coordinator, texts.REJECT_BUTTON, second)
    assert "Rejected: the gold label stays “negative”" in rejected["text"]
    await rita.wait_for("for “control 1” the expected answer stays “negative”")
    await coordinator.wait_for("No gold disputes are waiting in “Live”")
    back = await dan.wait_for("you can label “Live” again")
    scores = {s.worker_id: s for s in await store_of(bot).worker_scores(card_id(card))}
    assert (scores[51].gold_correct, scores[51].status) == (1, MembershipStatus.ACTIVE)
    assert (scores[52].gold_correct, scores[52].status) == (2, MembershipStatus.ACTIVE)
    await dan.press(texts.START_BUTTON, message_id=back["message_id"])
    await dan.wait_for(
        lambda m: m["message_id"] > back["message_id"] and m.get("text", "").startswith("Item")
    )


def card_id(card: dict[str, Any]) -> int:
    """The task-set id in a card's buttons (``ce:<id>``)."""
    return int(summary_data(card, texts.EXPORT_BUTTON).split(":")[1])
