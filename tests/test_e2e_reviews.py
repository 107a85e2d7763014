"""The review stream as workers meet it in the chat, and ``labelbot reviews NAME``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from sqlalchemy import select

from bot.app import LabelBotApp
from bot.fakegram import FakeTelegram
from storage.models import Answer, Review, ReviewVerdict
from tests.factories import make_spec
from tests.test_e2e_replies import reply_spec
from tests.test_e2e_worker import newer_than, settled, store_of

RULE = {"sample": 1.0, "reward": "0.01", "min_answers": 1, "min_gold_accuracy": 0.0}


async def test_a_reviewer_is_promoted_and_reviews_in_the_same_loop(
    bot: LabelBotApp, telegram: FakeTelegram, db_url: str
) -> None:
    await store_of(bot).load_taskset(make_spec(items=6, overlap=1, review=RULE))
    ann, bob = telegram.user(201, "Ann"), telegram.user(202, "Bob")
    await ann.send_text("/start")
    item = await ann.wait_for("Item 1")
    await ann.send_text("/me")
    assert "Reviewer: after 1 more answers" in (await ann.wait_for("Reviewer:"))["text"]
    await ann.press("positive", message_id=item["message_id"])
    await ann.wait_for("You are now a reviewer")
    await ann.wait_for("Item 2")  # only her own answer waits: she labels on

    await bob.send_text("/start")
    item = await bob.wait_for("Item 1")
    await bob.press("neutral", message_id=item["message_id"])
    await bob.wait_for("You are now a reviewer")
    review = await bob.wait_for(lambda m: m.get("text", "").startswith("Review"))
    assert "text number 0" in review["text"]
    assert "Answer given: positive" in review["text"]
    [buttons] = review["reply_markup"]["inline_keyboard"]
    assert [b["text"] for b in buttons] == ["✅ Correct", "❌ Wrong"]

    # ❌ stores nothing yet: the buttons become the other labels, and one tap picks the right.
    await bob.press("❌ Wrong", message_id=review["message_id"])
    await settled(bot, telegram)
    [picked] = [m for m in bob.messages if m["message_id"] == review["message_id"]]
    labels = [row[0]["text"] for row in picked["reply_markup"]["inline_keyboard"]]
    assert labels == ["negative", "neutral"]
    await bob.press("negative", message_id=review["message_id"])
    await bob.wait_for(newer_than(review["message_id"]))
    await settled(bot, telegram)
    [done] = [m for m in bob.messages if m["message_id"] == review["message_id"]]
    assert done["text"].endswith("✓ Your review: Wrong → negative")
    assert "reply_markup" not in done

    await bob.send_text("/me")
    assert "Reviewer: yes" in (await bob.wait_for("Reviewer:"))["text"]
    await bob.send_text("/earnings")
    assert "+0.01 USD review" in (await bob.wait_for("Your earnings"))["text"]
    await settled(bot, telegram)

    process = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "--database-url", db_url, "reviews", "sentiment"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.returncode == 0, process.stderr
    # Bob's ❌ waits for a second reviewer; Ann's and Bob's answers were both queued.
    assert "reviews of sentiment: 2 waiting, 1 done, 0 gold reviews done" in process.stdout
    assert "Ann" in process.stdout and "0%" in process.stdout  # 0 of 1 accepted so far


async def test_after_a_wrong_on_a_typed_answer_the_reviewer_may_type_the_right_text(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    rule = {"text": 1.0, "min_answers": 1, "min_gold_accuracy": 0.0}
    await store_of(bot).load_taskset(reply_spec(items=4, review=rule))
    ann, bob = telegram.user(211, "Ann"), telegram.user(212, "Bob")
    await ann.send_text("/start")
    await ann.wait_for("Item 1")
    await settled(bot, telegram)
    await ann.send_text("the cat sat on a mat")
    await ann.wait_for("Item 2")

    await bob.send_text("/start")
    await bob.wait_for("Item 1")
    await settled(bot, telegram)
    await bob.send_text("a bird in the hand")
    review = await bob.wait_for(lambda m: m.get("text", "").startswith("Review"))
    assert "Answer given: the cat sat on a mat" in review["text"]
    await bob.press("❌ Wrong", message_id=review["message_id"])
    prompt = await bob.wait_for("Review #")
    [asked] = [c for c in telegram.calls if "Review #" in str(c.params.get("text"))]
    assert asked.params["reply_markup"]["force_reply"] is True  # the phone opens a reply
    await settled(bot, telegram)
    await bob.send_text("the cat sat on the mat", reply_to=prompt)
    await bob.wait_for("your correction is saved")
    await settled(bot, telegram)

    async with store_of(bot).sessions() as session:
        reviews = (await session.scalars(select(Review).where(Review.worker_id == 212))).all()
        answers = (await session.scalars(select(Answer).where(Answer.worker_id == 212))).all()
    assert [(r.verdict, r.corrected_text) for r in reviews] == [
        (ReviewVerdict.WRONG, "the cat sat on the mat")
    ]
    # The correction was not taken for an answer to Bob's next item.
    assert [a.text for a in answers] == ["a bird in the hand"]


async def test_a_not_sure_answer_is_reviewed_with_every_label_to_choose_from(
    bot: LabelBotApp, telegram: FakeTelegram
) -> None:
    rule = {"not_sure": True, "min_answers": 1, "min_gold_accuracy": 0.0}
    await store_of(bot).load_taskset(make_spec(items=4, overlap=1, review=rule))
    ann, bob = telegram.user(221, "Ann"), telegram.user(222, "Bob")
    await ann.send_text("/start")
    await ann.press("Not sure", message_id=(await ann.wait_for("Item 1"))["message_id"])
    await ann.wait_for("Item 2")
    await bob.send_text("/start")
    await bob.press("positive", message_id=(await bob.wait_for("Item 1"))["message_id"])
    review = await bob.wait_for(lambda m: m.get("text", "").startswith("Review"))
    assert "Answer given: Not sure" in review["text"]

    await bob.press("❌ Wrong", message_id=review["message_id"])
    await settled(bot, telegram)
    [picked] = [m for m in bob.messages if m["message_id"] == review["message_id"]]
    labels = [row[0]["text"] for row in picked["reply_markup"]["inline_keyboard"]]
    assert labels == ["positive", "negative", "neutral"]
    await bob.press("neutral", message_id=review["message_id"])
    await bob.wait_for(newer_than(review["message_id"]))
    await settled(bot, telegram)
    [done] = [m for m in bob.messages if m["message_id"] == review["message_id"]]
    assert done["text"].endswith("✓ Your review: Wrong → neutral")
