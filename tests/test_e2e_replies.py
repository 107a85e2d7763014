"""Typed and voice answers end to end: the real Application, the fake Bot API, both databases
and both layouts. A worker's next message answers their leased item; a bad one is refused and
the item waits; a redelivered or edited message is stored once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram, FakeUser, JSONDict
from handlers import texts
from handlers.flood import BURST
from storage.models import Answer, AnswerKind, Assignment, AssignmentState, LedgerEntry
from tasksets.spec import TaskSetSpec
from tests.conftest import Clock, running_bot
from tests.test_e2e_worker import answers_in_db, newer_than, settled, store_of

SENTENCES = ["the cat sat on the mat", "a bird in the hand", "all is well that ends well"]


def reply_spec(answer: str = "text", *, items: int = 3, gold: int = 0, **extra: Any) -> TaskSetSpec:
    rows: list[dict[str, Any]] = [
        {"id": f"t{i}", "text": SENTENCES[i % len(SENTENCES)]} for i in range(items)
    ]
    rows += [
        {"id": f"g{i}", "text": "Type: the quick brown fox", "gold": "the quick brown fox"}
        for i in range(gold)
    ]
    return TaskSetSpec.model_validate(
        {
            "name": f"{answer.replace('_', '-')}-set",
            "title": "Transcribe",
            "instructions": "Type exactly what you read.",
            "question": "What does it say?",
            "answer": answer,
            "overlap": 1,
            "reward": "0.05",
            "gold_ratio": 0.0,
            "items": rows,
            **extra,
        }
    )


def items_shown(user: FakeUser) -> list[JSONDict]:
    """The bot's messages showing an item (a card's has a confirmation line on top)."""
    return [m for m in user.messages if re.search(r"^Item \d+$", m.get("text", ""), re.M)]


def buttons(message: JSONDict) -> list[str]:
    markup = message.get("reply_markup") or {"inline_keyboard": []}
    return [button["text"] for row in markup["inline_keyboard"] for button in row]


async def stored_answers(bot: LabelBotApp) -> list[Any]:
    async with store_of(bot).sessions() as session:
        return list((await session.execute(select(Answer).order_by(Answer.id))).scalars())


async def leased_tokens(bot: LabelBotApp) -> list[str]:
    async with store_of(bot).sessions() as session:
        return list(
            await session.scalars(
                select(Assignment.token).where(Assignment.state == AssignmentState.LEASED)
            )
        )


async def no_violations(bot: LabelBotApp) -> None:
    violations = await store_of(bot).consistency_violations()
    assert not any(violations.values()), violations


async def joined(bot: LabelBotApp, telegram: FakeTelegram, spec: TaskSetSpec, uid: int) -> Any:
    await store_of(bot).load_taskset(spec)
    user = telegram.user(uid, "Ann")
    await user.send_text("/start")
    return user, await user.wait_for("Item 1")


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_typed_answers_are_stored_and_the_next_item_follows(
    bot: LabelBotApp, telegram: FakeTelegram, layout: str
) -> None:
    ann, first = await joined(bot, telegram, reply_spec(layout=layout), 101)
    assert "Reply with text, up to 1,000 characters" in first["text"]
    assert buttons(first) == ["Skip", "Not sure"]
    assert "How to answer: ✍ Reply with text" in ann.messages[0]["text"]

    await settled(bot, telegram)  # a person reads the item before answering
    await ann.send_text("  the cat sat on the mat ")
    second = await ann.wait_for("Item 2")
    await settled(bot, telegram)
    await ann.send_text("a bird in the hand")
    await ann.wait_for("Item 3")
    await ann.press("Skip")
    await ann.wait_for("All done")
    await settled(bot, telegram)

    answers = await stored_answers(bot)
    assert [(a.kind, a.text) for a in answers] == [
        (AnswerKind.TEXT, "the cat sat on the mat"),
        (AnswerKind.TEXT, "a bird in the hand"),
        (AnswerKind.SKIP, None),
    ]
    typed = [m["message_id"] for m in ann.sent if not m["text"].startswith("/")]
    assert [a.reply_message_id for a in answers[:2]] == typed
    # The answered items keep no buttons; in the card layout each next card confirms the answer.
    assert all(buttons(m) == [] for m in items_shown(ann) if "Item 3" not in m["text"])
    if layout == "card":
        assert second["text"].startswith("✓ the cat sat on the mat\n\nItem 2")
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(func.sum(LedgerEntry.amount_minor))) == 10
    await no_violations(bot)


async def test_voice_notes_are_stored_as_file_id_seconds_and_size(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = reply_spec("voice", min_seconds=2, max_seconds=30, instructions="Read it aloud.")
    ann, first = await joined(bot, telegram, spec, 102)
    assert "Send a voice note of 2–30 s" in first["text"]

    recording = b"OggS" + bytes(range(200))
    await ann.send_voice(7, recording)
    await ann.wait_for("Item 2")
    await settled(bot, telegram)

    [answer] = await stored_answers(bot)
    voice = ann.sent[-1]["voice"]
    assert (answer.kind, answer.text) == (AnswerKind.VOICE, None)
    assert (answer.voice_file_id, answer.voice_seconds, answer.voice_bytes) == (
        voice["file_id"],
        7,
        len(recording),
    )
    # The file stays with Telegram until an export fetches it by its file_id.
    file = await bot.bot.get_file(answer.voice_file_id)
    assert bytes(await file.download_as_bytearray()) == recording
    await no_violations(bot)


async def test_text_or_voice_takes_either(bot: LabelBotApp, telegram: FakeTelegram) -> None:
    ann, first = await joined(bot, telegram, reply_spec("text_or_voice", max_seconds=20), 103)
    assert (
        "Reply with text (up to 1,000 characters) or 🎙 send a voice note of up to 20 s"
        in (first["text"])
    )
    await ann.send_voice(3)
    await ann.wait_for("Item 2")
    await ann.send_text("typed instead")
    await ann.wait_for("Item 3")
    await settled(bot, telegram)
    assert [a.kind for a in await stored_answers(bot)] == [AnswerKind.VOICE, AnswerKind.TEXT]


async def refused(user: FakeUser, send: Any, expected: str) -> None:
    before = user.last["message_id"]
    await send
    reply = await user.wait_for(newer_than(before))
    assert expected in reply["text"]
    assert "Nothing was saved; the item is still waiting." in reply["text"]


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_bad_replies_get_a_clear_reply_and_the_item_stays_leased(
    bot: LabelBotApp, telegram: FakeTelegram, layout: str
) -> None:
    ann, first = await joined(bot, telegram, reply_spec(max_length=20, layout=layout), 104)
    [token] = await leased_tokens(bot)

    await refused(ann, ann.send_text(" \u3000 "), "That message is empty.")
    await refused(ann, ann.send_text("x" * 21), "longer than 20 characters")
    await refused(ann, ann.send_sticker(), "This task takes another kind of answer.")
    await refused(ann, ann.send_photo(b"\xff\xd8 jpeg"), "another kind of answer")
    await refused(ann, ann.send_voice(4), "another kind of answer")
    await settled(bot, telegram)

    assert await answers_in_db(bot) == 0
    assert await leased_tokens(bot) == [token]
    assert len(items_shown(ann)) == 1 and buttons(first) == ["Skip", "Not sure"]
    await ann.send_text("x" * 20)  # exactly the limit
    await ann.wait_for("Item 2")
    await settled(bot, telegram)
    [answer] = await stored_answers(bot)
    assert answer.text == "x" * 20
    await no_violations(bot)


async def test_voice_notes_of_the_wrong_length_and_text_are_refused_in_a_voice_set(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    ann, _first = await joined(
        bot, telegram, reply_spec("voice", min_seconds=2, max_seconds=30), 105
    )

    await refused(ann, ann.send_voice(1), "too short: 2 s at least")
    await refused(ann, ann.send_voice(31), "too long: 30 s at most")
    await refused(ann, ann.send_text("hello"), "another kind of answer")
    await settled(bot, telegram)
    assert await answers_in_db(bot) == 0
    assert len(await leased_tokens(bot)) == 1


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_a_redelivered_reply_is_stored_once_and_never_answers_the_next_item(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock, layout: str
) -> None:
    clock.step = timedelta(0)  # the repeat comes at once
    ann, _first = await joined(bot, telegram, reply_spec(layout=layout), 106)

    update_id = await ann.send_text("the cat sat on the mat")
    await ann.wait_for("Item 2")
    await settled(bot, telegram)
    leased = await leased_tokens(bot)
    telegram.redeliver(update_id)  # at once, as after a crash before the offset was confirmed
    await settled(bot, telegram)

    assert await answers_in_db(bot) == 1
    assert await leased_tokens(bot) == leased  # item 2 is still waiting for its own answer
    assert len(items_shown(ann)) == 2

    # Redelivered long after (the process died before it could send the next item): the
    # worker learns it was saved and sees their current item again; still nothing new stored.
    clock.advance(seconds=30)
    telegram.redeliver(update_id)
    saved = await ann.wait_for("was saved already")
    again = await ann.wait_for(newer_than(saved["message_id"]))
    await settled(bot, telegram)
    assert "Item 2" in again["text"]
    assert await answers_in_db(bot) == 1
    assert await leased_tokens(bot) == leased
    await no_violations(bot)


@pytest.mark.parametrize("layout", ["chat", "card"])
async def test_an_edit_within_ten_minutes_replaces_the_answer_once(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock, layout: str
) -> None:
    ann, _first = await joined(bot, telegram, reply_spec(layout=layout), 107)
    await ann.send_text("the cat sta on the mat")
    await ann.wait_for("Item 2")
    typo = ann.sent[-1]["message_id"]

    edit = await ann.edit_text(typo, "the cat sat on the mat")
    assert "Your answer is now “the cat sat on the mat”" in (await ann.wait_for("✏"))["text"]
    telegram.redeliver(edit)
    assert "Already recorded" in (await ann.wait_for("Already recorded"))["text"]
    await settled(bot, telegram)
    [answer] = await stored_answers(bot)
    assert answer.text == "the cat sat on the mat" and answer.edited_at is not None

    await refused_edit(ann, typo, "   ", "That message is empty. Your answer stays as it was.")
    clock.advance(minutes=10)
    await refused_edit(ann, typo, "the dog sat on the mat", "Too late to change")
    await settled(bot, telegram)
    [answer] = await stored_answers(bot)
    assert answer.text == "the cat sat on the mat"
    assert await answers_in_db(bot) == 1 and len(await leased_tokens(bot)) == 1
    async with store_of(bot).sessions() as session:
        assert await session.scalar(select(func.sum(LedgerEntry.amount_minor))) == 5
    await no_violations(bot)


async def refused_edit(user: FakeUser, message_id: int, text: str, expected: str) -> None:
    before = user.last["message_id"]
    await user.edit_text(message_id, text)
    assert expected in (await user.wait_for(newer_than(before)))["text"]


async def test_gold_text_is_judged_by_word_error_rate_and_feedback_shows_it(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    spec = reply_spec(items=0, gold=2, gold_ratio=1.0, gold_max_wer=0.25)
    ann, _first = await joined(bot, telegram, spec, 108)

    await ann.send_text("The quick brown FOX!")  # the same once normalised
    right = await ann.wait_for("✅")
    assert right["text"] == "✅ Right: “the quick brown fox”."
    await ann.send_text("the quick red fox")  # one word in four: WER 0.25
    await ann.wait_for(newer_than(right["message_id"]))
    await ann.wait_for("All done")
    # A judged control answer cannot be corrected after the expected text was shown.
    await refused_edit(ann, ann.sent[-1]["message_id"], "the quick brown fox", "control question")

    bob = telegram.user(109, "Bob")
    await bob.send_text("/start")
    await bob.wait_for("Item 1")
    await bob.send_text("a slow brown fox")  # two words in four
    wrong = await bob.wait_for("❌")
    assert wrong["text"] == "❌ The expected answer was “the quick brown fox”."
    await bob.press("Dispute", message_id=wrong["message_id"])
    prompt = await bob.wait_for("Dispute #")
    await bob.send_voice(3, reply_to=prompt)  # a reply to a prompt is no answer
    await bob.send_text("fox is right but quick is wrong", reply_to=prompt)
    await bob.wait_for("a coordinator will review")
    assert not any("another kind of answer" in text for text in bob.texts())
    await settled(bot, telegram)
    async with store_of(bot).sessions() as session:
        rows = await session.execute(select(Answer.worker_id, Answer.text).order_by(Answer.id))
        assert [tuple(row) for row in rows] == [
            (108, "The quick brown FOX!"),
            (108, "the quick red fox"),
            (109, "a slow brown fox"),
        ]
    scores = {
        s.worker_id: (s.gold_correct, s.gold_answers) for s in await store_of(bot).worker_scores(1)
    }
    assert scores == {108: (2, 2), 109: (0, 1)}
    [progress] = await store_of(bot).taskset_progress()
    assert (progress.gold_answers, progress.gold_correct) == (3, 2)
    case = await store_of(bot).coordination.next_dispute(progress.taskset_id)
    assert case is not None and (case.worker_id, case.answer) == (109, "a slow brown fox")
    assert case.reason == "fox is right but quick is wrong"
    await no_violations(bot)


async def test_typed_message_in_a_labels_set_points_to_the_buttons(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    from tests.factories import make_spec

    await store_of(bot).load_taskset(make_spec(items=2, overlap=1))
    ann = telegram.user(110, "Ann")
    await ann.send_text("/start")
    await ann.wait_for("Item 1")
    await ann.send_text("positive")
    assert "answer with the buttons" in (await ann.wait_for("buttons under"))["text"]
    await settled(bot, telegram)
    assert await answers_in_db(bot) == 0


async def test_a_typed_answer_dropped_in_a_flood_is_told_and_counts_when_sent_again(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    ann, _first = await joined(bot, telegram, reply_spec(), 111)
    await settled(bot, telegram)
    clock.advance(minutes=1)
    clock.step = timedelta(0)  # a flood: everything in one instant
    for _ in range(BURST):
        await ann.send_text("/help")
    for _ in range(3):  # dropped taps get their alerts, and leave the notice for messages
        await ann.press("Not sure")
    await ann.send_text("the cat sat on the mat")
    await ann.wait_for(texts.SLOW_DOWN)
    await settled(bot, telegram)
    assert await answers_in_db(bot) == 0 and len(await leased_tokens(bot)) == 1

    clock.advance(seconds=1)  # a moment's pause
    await ann.send_text("the cat sat on the mat")
    await ann.wait_for("Item 2")
    await settled(bot, telegram)
    [answer] = await stored_answers(bot)
    assert (answer.kind, answer.text) == (AnswerKind.TEXT, "the cat sat on the mat")


async def test_a_reply_after_the_item_went_to_someone_else_is_not_stored(
    bot: LabelBotApp, telegram: FakeTelegram, clock: Clock
) -> None:
    ann, _first = await joined(bot, telegram, reply_spec(items=1), 112)
    await settled(bot, telegram)
    clock.advance(minutes=11)
    assert await store_of(bot).expire_leases() == 1
    bob = telegram.user(113, "Bob")
    await bob.send_text("/start")
    await bob.wait_for("Item 1")

    await ann.send_text("the cat sat on the mat")
    assert "timed out" in (await ann.wait_for("timed out"))["text"]
    await ann.wait_for("All done")
    await bob.send_text("the cat sat on the mat")
    await bob.wait_for("All done")
    await settled(bot, telegram)
    assert [(a.worker_id, a.text) for a in await stored_answers(bot)] == [
        (113, "the cat sat on the mat")
    ]
    await no_violations(bot)


async def test_a_coordinator_previews_a_typed_set_as_workers_will_see_it(
    telegram: FakeTelegram, db_url: str, clock: Clock
) -> None:
    spec = reply_spec("voice", max_seconds=15)
    content = spec.model_dump_json(exclude_defaults=True, exclude={"labels"}).encode()
    async with running_bot(telegram, db_url, clock, rate_limit=0, coordinators=frozenset({9})):
        cora = telegram.user(9, "Cora")
        await cora.send_document(content, "voice-set.json")
        summary = await cora.wait_for("Draft")
        preview = await cora.wait_for("Item 1")
    assert "Answers: 🎙 Send a voice note of up to 15 s." in summary["text"]
    assert preview["text"].endswith("What does it say?\n🎙 Send a voice note of up to 15 s.")
    assert buttons(preview) == ["Skip", "Not sure"]
